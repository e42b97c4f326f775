"""version-sidecar: tells every open browser tab when a new version of the app is out."""

__version__ = "0.1.0"
