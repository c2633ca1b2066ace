// What the server tests share: start lazyllm-server on a free port and stop it, a watchdog so
// no test hangs, server-sent events, /metrics, npm packages installed into the build tree, and
// skipping (exit 77) when something outside the project is missing.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export const SERVER = process.env.LAZYLLM_SERVER;
export const MODEL = process.env.LAZYLLM_MODEL;
const children = new Set();

export function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
}

/// Ends the test: kills what it started.
export function finish(code, message) {
  if (message) (code === 0 ? console.log : console.error)(message);
  for (const c of children) c.kill("SIGKILL");
  process.exit(code);
}
export const skip = (why) => finish(77, `SKIP: ${why}`);
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/// Fails the test after `seconds` whatever it is doing.
export function watchdog(seconds) {
  setTimeout(() => finish(1, `FAIL: the test did not end within ${seconds} s`), seconds * 1000).unref();
  process.on("unhandledRejection", (e) => finish(1, `FAIL: ${e && e.stack ? e.stack : e}`));
}

/// Runs `main`; exit 0 when it returns, 1 with the error when it throws.
export function run(main) {
  main().then(
    () => finish(0, "PASS"),
    (e) => finish(1, `FAIL: ${e && e.stack ? e.stack : e}`),
  );
}

/// Starts lazyllm-server with `args` on a free port; resolves once it listens.
export function startServer(args, { env = {}, quiet = false } = {}) {
  if (!SERVER || !existsSync(SERVER)) throw new Error(`lazyllm-server not found at '${SERVER}'`);
  const argv = ["--port", "0", "--timeout", "30", ...args];
  const proc = spawn(SERVER, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in 60 s:\n${log}`)), 60000);
    const onData = (d) => {
      log += d;
      if (!quiet) process.stderr.write(d);
      const m = /listening on http:\/\/([^:\s]+):(\d+)/.exec(log);
      if (m && timer) {
        clearTimeout(timer);
        const url = `http://${m[1]}:${m[2]}`;
        resolve({
          url,
          proc,
          log: () => log,
          async stop() {
            if (proc.exitCode !== null) return proc.exitCode;
            proc.kill("SIGTERM");
            const code = await Promise.race([
              new Promise((r) => proc.once("exit", (c, s) => r(c ?? s))),
              new Promise((r) => setTimeout(() => r("timeout"), 10000)),
            ]);
            if (code === "timeout") proc.kill("SIGKILL");
            children.delete(proc);
            return code;
          },
        });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => reject(new Error(`the server exited (${code}) before listening:\n${log}`)));
  });
}

/// fetch with a timeout (ms).
export function request(url, { method = "GET", body, headers = {}, timeout = 60000, signal } = {}) {
  const h = { ...headers };
  if (body !== undefined && typeof body !== "string") body = JSON.stringify(body);
  if (body !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json";
  const limit = AbortSignal.timeout(timeout);
  const s = signal ? (AbortSignal.any ? AbortSignal.any([signal, limit]) : signal) : limit;
  return fetch(url, { method, body, headers: h, signal: s });
}

export async function postJson(url, body, opts = {}) {
  const r = await request(url, { method: "POST", body, ...opts });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) {}
  return { status: r.status, headers: r.headers, json, text };
}

/// The data payloads of a server-sent-event response, as they arrive ("[DONE]" included).
export async function* events(res) {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of ev.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
    }
  }
}

/// A streamed completion's text, finish reason and usage (the text of every chunk joined).
export async function streamText(url, endpoint, body, opts = {}) {
  const r = await request(`${url}${endpoint}`, { method: "POST", body: { ...body, stream: true, stream_options: { include_usage: true } }, ...opts });
  if (r.status !== 200) throw new Error(`${endpoint}: HTTP ${r.status}: ${await r.text()}`);
  let text = "", finish = null, usage = null, chunks = 0, done = false;
  for await (const data of events(r)) {
    if (data === "[DONE]") {
      done = true;
      break;
    }
    const j = JSON.parse(data);
    if (j.error) throw new Error(`${endpoint}: error event: ${data}`);
    if (j.usage) usage = j.usage;
    for (const c of j.choices) {
      text += c.text ?? c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
      ++chunks;
    }
  }
  check(done, "the stream ends with data: [DONE]");
  return { text, finish, usage, chunks };
}

/// /metrics as {name: value}.
export async function metrics(url, headers = {}) {
  const r = await request(`${url}/metrics`, { headers, timeout: 10000 });
  const out = {};
  for (const line of (await r.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const [k, v] = line.split(" ");
    out[k.replace(/^lazyllm_/, "")] = Number(v);
  }
  return out;
}

/// Polls /metrics until `pred(m)` holds (resolves with m) or `ms` pass (throws).
export async function waitMetrics(url, pred, what, ms = 20000, headers = {}) {
  const until = Date.now() + ms;
  let m;
  while (Date.now() < until) {
    m = await metrics(url, headers);
    if (pred(m)) return m;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}; metrics: ${JSON.stringify(m)}`);
}

/// The npm package `name` (e.g. "openai@4") installed under $LAZYLLM_NPM_DIR/<dir>, loaded;
/// skips the test when npm or the registry is not available.
export async function npmPackage(name, dir) {
  const root = path.join(process.env.LAZYLLM_NPM_DIR || path.join(process.cwd(), "npm"), dir);
  const bare = name.replace(/@[^@/]*$/, "");
  const req = createRequire(path.join(root, "package.json"));
  const load = () => import(req.resolve(bare));
  try {
    return await load();
  } catch (_) {}
  mkdirSync(root, { recursive: true });
  if (spawnSync("npm", ["--version"], { stdio: "ignore" }).status !== 0) skip(`npm is not installed (needed for ${bare})`);
  log(`npm install ${name} into ${root}`);
  const r = spawnSync("npm", ["install", "--prefix", root, "--no-audit", "--no-fund", "--loglevel=error", name], {
    encoding: "utf8",
    timeout: 240000,
  });
  if (r.status !== 0) skip(`npm install ${name} failed (no registry?): ${(r.stderr || r.error || "").toString().trim().split("\n").slice(-3).join(" | ")}`);
  return await load();
}

/// A prompt of lazyllm's task format (lazyllm-make-task --seed 5 --length 200): three documents
/// and a question, which the demo model answers from the documents.
export const CONTEXT =
  "Document 1: Jonas Nyberg\nJonas Nyberg lives in Brussels. Jonas Nyberg works as an economist. Jonas Nyberg's favourite colour is crimson. Jonas Nyberg was born in 1980. Jonas Nyberg's pet is a mouse. Jonas Nyberg's friend is Elias Kendall.\n\n" +
  "Document 2: Aron Ferrari\nAron Ferrari lives in Rome. Aron Ferrari works as a farmer. Aron Ferrari's favourite colour is crimson. Aron Ferrari was born in 1995. Aron Ferrari's pet is a hamster. Aron Ferrari's friend is Ennio Falk.\n\n" +
  "Document 3: Marek Yates\nMarek Yates lives in Lima. Marek Yates works as a surgeon. Marek Yates's favourite colour is silver. Marek Yates was born in 1955. Marek Yates's pet is an iguana. Marek Yates's friend is Olga Fletcher.\n\n";
export const qaPrompt = (question) => `${CONTEXT}Question: ${question}\nAnswer:`;
