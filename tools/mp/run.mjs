// Runs microwitch's portable tests inside wasm MicroPython 1.27 (npm build), driven through its
// JS API because its own CLI always exits 0. Started by tools/mptest.py; not meant to be run by hand.
//
//   node run.mjs '<json>'   with json = {lib, ext, tests: [[hostPath, modName, label], ...],
//                                        extras: [[hostPath, fsName], ...], filter, heap}
//
// Copies lib/microwitch/**<ext> to /lib/microwitch and the test files (plus their helper and data
// files) to /tests in the in-memory FS, then runs mptest_driver.main(). Exit status: 0 all passed,
// 1 a test failed, 2 the runner itself broke, N for a SystemExit(N) that escaped the driver.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function lineWriter(fd) {
  // MicroPython hands us one byte at a time; write whole lines (pipes are synchronous on Linux).
  let buf = [];
  const flush = () => {
    if (buf.length) {
      fs.writeSync(fd, Buffer.from(buf));
      buf = [];
    }
  };
  const put = (bytes) => {
    for (const c of bytes) {
      buf.push(c);
      if (c === 10 || buf.length >= 4096) flush();
    }
  };
  return { put, flush };
}

function copyTree(mp, hostDir, fsDir, ext) {
  mp.FS.mkdirTree(fsDir);
  for (const ent of fs.readdirSync(hostDir, { withFileTypes: true })) {
    if (ent.name.startsWith(".") || ent.name === "__pycache__") continue;
    const h = path.join(hostDir, ent.name);
    if (ent.isDirectory()) copyTree(mp, h, fsDir + "/" + ent.name, ext);
    else if (ent.name.endsWith(ext)) mp.FS.writeFile(fsDir + "/" + ent.name, fs.readFileSync(h));
  }
}

function systemExitCode(err) {
  // message ends with "SystemExit: <arg>"; no arg or None means 0, an int is the code, else 1
  const lines = String(err.message).trimEnd().split("\n");
  const m = /^SystemExit:?\s*(.*)$/.exec(lines[lines.length - 1]);
  const arg = m ? m[1].trim() : "";
  if (arg === "" || arg === "None") return 0;
  if (/^-?\d+$/.test(arg)) return Number(arg) & 255;
  process.stderr.write(arg + "\n");
  return 1;
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const out = lineWriter(1);
  const err = lineWriter(2);
  const mp = await loadMicroPython({
    heapsize: cfg.heap || 8 * 1024 * 1024,
    linebuffer: false,
    stdout: out.put,
    stderr: err.put,
  });
  copyTree(mp, path.join(cfg.lib, "microwitch"), "/lib/microwitch", cfg.ext);
  mp.FS.mkdirTree("/tests");
  for (const [host, , ] of cfg.tests) mp.FS.writeFile("/tests/" + path.basename(host), fs.readFileSync(host));
  for (const [host, name] of cfg.extras) mp.FS.writeFile("/tests/" + name, fs.readFileSync(host));
  mp.FS.mkdirTree("/mptest");
  mp.FS.writeFile("/mptest/mptest_driver.py", fs.readFileSync(path.join(HERE, "mptest_driver.py")));

  const modules = cfg.tests.map(([, mod, label]) => [mod, label]);
  mp.globals.set("_mw_modules_json", JSON.stringify(modules));
  mp.globals.set("_mw_filter", cfg.filter || "");
  let code;
  try {
    await mp.runPythonAsync(
      [
        "import sys, json",
        "sys.path[:0] = ['/lib', '/tests', '/mptest']  # sys.path cannot be rebound here",
        "import mptest_driver",
        "_mw_failed = await mptest_driver.main(json.loads(_mw_modules_json), _mw_filter)",
      ].join("\n"),
    );
    code = mp.globals.get("_mw_failed") ? 1 : 0;
  } catch (e) {
    if (e && e.name === "PythonError" && e.type === "SystemExit") {
      code = systemExitCode(e);
    } else {
      out.flush();
      process.stderr.write("mptest: runner error: " + (e && e.name === "PythonError" ? e.message : e && e.stack ? e.stack : e) + "\n");
      code = 2;
    }
  }
  out.flush();
  err.flush();
  process.exit(code);
}

main().catch((e) => {
  process.stderr.write("mptest: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
