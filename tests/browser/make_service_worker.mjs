// Generates a Workbox service worker for the app shell in the folder given: it precaches
// index.html and answers navigations from that cache first, as a typical PWA does. A new
// worker waits until told {type: "SKIP_WAITING"} (Workbox's default), then takes over.
import { generateSW } from "workbox-build";

const folder = process.argv[2];
const { warnings } = await generateSW({
  globDirectory: folder,
  globPatterns: ["index.html"],
  swDest: `${folder}/sw.js`,
  clientsClaim: true,
  mode: "development", // no minifying: quicker, the same behaviour
});
if (warnings.length) console.error(warnings.join("\n"));
