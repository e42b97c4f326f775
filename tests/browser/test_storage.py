"""The page's own IndexedDB work is never blocked by the script's election (Chromium and Firefox,
on the plain-HTTP origin, where there are no Web Locks and the election holds an IndexedDB
connection): an app that deletes every database at logout, ours included, is done within a
second whether the deleting tab leads or follows, and the tabs elect again by themselves."""

import json
from functools import partial

import pytest

from tests.browser.conftest import Stack
from tests.browser.engines import Engine, poll
from tests.browser.test_engines import open_app, role, settled_roles, shows

# The page keeps data of its own, then logs out: it lists every database and deletes each one.
OWN_DATABASE = """new Promise((done) => {
  const request = indexedDB.open("app-data", 1);
  request.onupgradeneeded = () => request.result.createObjectStore("drafts");
  request.onsuccess = () => { request.result.close(); done(true); };
})"""
LOG_OUT = """(() => {
  window.deleted = null;
  indexedDB.databases().then((found) => Promise.all(found.map(({ name }) => new Promise((done, failed) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => done(name);
    request.onerror = () => failed(request.error);
  })))).then((names) => { window.deleted = names; });
  return true;
})()"""


@pytest.mark.parametrize("engine", ["chromium", "firefox"], indirect=True)
@pytest.mark.parametrize("deleting", ["leader", "follower"])
def test_deleting_every_database_is_never_blocked_and_the_tabs_elect_again(
    engine: Engine, stack: Stack, deleting: str
) -> None:
    tabs = [open_app(engine, stack, 'data-countdown="0"') for _ in range(3)]
    poll(lambda: settled_roles(tabs), f"{engine.name}: one leading tab and two following")
    tab = next(tab for tab in tabs if role(tab) == deleting)
    assert tab.evaluate(OWN_DATABASE) is True
    names = tab.evaluate("indexedDB.databases().then((found) => found.map(({ name }) => name).sort())")
    assert "app-data" in names and any(name.startswith("version-sidecar ") for name in names), names

    tab.evaluate(LOG_OUT)
    # The bound is the behaviour's own: the deletes are done within a second.
    poll(lambda: sorted(tab.evaluate("window.deleted") or []) == names, f"{engine.name}: every delete done", 1.0)

    poll(lambda: settled_roles(tabs), f"{engine.name}: one leading tab again")
    poll(lambda: stack.stream_count() == 1, f"{engine.name}: one stream again")
    stack.deploy("v2")
    for each in tabs:
        poll(partial(shows, each, "A new version (v2) is available."), f"{engine.name}: every toast")
    assert stack.stream_count() == 1


WORKER_LOGS_OUT = """((name) => {
  const code = `const request = indexedDB.deleteDatabase(${JSON.stringify(name)});
    request.onsuccess = () => postMessage("deleted");`;
  const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  worker.onmessage = (event) => { window.deleted = event.data; };
  return true;
})"""


@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_a_delete_from_a_worker_is_let_through_by_a_leader_alone(engine: Engine, stack: Stack) -> None:
    # A worker's deleteDatabase is not the page's: the leader hears of it from the database itself.
    tab = open_app(engine, stack, 'data-countdown="0"')
    poll(lambda: role(tab) == "leader", "the tab to lead")
    name = tab.evaluate("indexedDB.databases().then((found) => found[0].name)")
    tab.evaluate(f"{WORKER_LOGS_OUT}({json.dumps(name)})")
    poll(lambda: tab.evaluate("window.deleted") == "deleted", "the worker's delete done", 1.0)
    poll(lambda: role(tab) == "leader" and stack.stream_count() == 1, "the tab to lead its stream again")
    stack.deploy("v2")
    poll(partial(shows, tab, "A new version (v2) is available."), "the toast")
