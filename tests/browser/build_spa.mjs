// Builds the single-page app of the chunk tests with a real bundler, at test time:
//   node build_spa.mjs vite|webpack SOURCE_DIR OUT_DIR
// Vite builds SOURCE_DIR/index.html and what it imports; webpack builds SOURCE_DIR/main.js into
// OUT_DIR/main.js and one hashed file per lazily imported chunk (the test writes the page).
const [tool, source, out] = process.argv.slice(2);
if (tool === "vite") {
  const { build } = await import("vite");
  await build({ root: source, configFile: false, logLevel: "warn", build: { outDir: out, emptyOutDir: true } });
} else if (tool === "webpack") {
  const { default: webpack } = await import("webpack");
  const options = {
    mode: "production",
    context: source,
    entry: "./main.js",
    output: { path: out, filename: "main.js", chunkFilename: "[name].[contenthash].js", publicPath: "/", clean: true },
  };
  const stats = await new Promise((resolve, reject) => {
    webpack(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
  if (stats.hasErrors()) throw new Error(stats.toString("errors-only"));
} else {
  throw new Error(`unknown bundler ${tool}`);
}
