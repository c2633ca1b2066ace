// Bad requests, each with its status and an OpenAI error object, and the server still serving
// afterwards: a missing or wrong API key, malformed JSON, wrong types, unknown and unsupported
// sampling fields, max_tokens beyond the context, a prompt over the context, an oversized body,
// an unknown model or endpoint, and a flood beyond the queue (503 with Retry-After). Also the
// command line's refusals: a port in use, a pool that cannot be had, a CUDA backend not built.
import { spawnSync } from "node:child_process";
import { check, log, metrics, MODEL, postJson, request, run, SERVER, startServer, watchdog } from "./harness.mjs";

watchdog(200);
const KEY = "sk-test-0123456789";
const auth = { Authorization: `Bearer ${KEY}` };

run(async () => {
  const server = await startServer(["-m", MODEL, "-c", "1024", "-np", "1", "--queue", "2", "--max-body", "65536"], {
    env: { LAZYLLM_API_KEY: KEY },
  });
  const url = server.url;
  const post = (path, body, headers = auth) => postJson(`${url}${path}`, body, { headers, timeout: 60000 });
  const ok = async () => {
    const r = await post("/v1/completions", { prompt: "Once upon a time", max_tokens: 4 });
    check(r.status === 200 && r.json.choices[0].text.length > 0, `the server still serves (${r.status} ${r.text})`);
  };

  const cases = [
    ["no API key", "/v1/completions", { prompt: "x" }, 401, {}],
    ["a wrong API key", "/v1/completions", { prompt: "x" }, 401, { Authorization: "Bearer sk-wrong" }],
    ["not Bearer", "/v1/completions", { prompt: "x" }, 401, { Authorization: KEY }],
    ["malformed JSON", "/v1/completions", '{"prompt": "x",', 400],
    ["not an object", "/v1/completions", "[1, 2]", 400],
    ["a wrong type", "/v1/completions", { prompt: "x", max_tokens: "five" }, 400, auth, "max_tokens"],
    ["a wrong type (chat)", "/v1/chat/completions", { messages: "hi" }, 400, auth, "messages"],
    ["an unknown sampling field", "/v1/completions", { prompt: "x", repetition_penalty: 1.2 }, 400, auth, "repetition_penalty"],
    ["another unknown field", "/v1/completions", { prompt: "x", typical_p: 0.9 }, 400, auth, "typical_p"],
    ["an unsupported value", "/v1/completions", { prompt: "x", presence_penalty: 0.5 }, 400, auth, "presence_penalty"],
    ["n = 2", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], n: 2 }, 400, auth, "n"],
    ["max_tokens beyond the context", "/v1/completions", { prompt: "x", max_tokens: 1100 }, 400, auth, "max_tokens"],
    ["a prompt over the context", "/v1/completions", { prompt: "Once upon a time ".repeat(400) }, 400, auth, "prompt"],
    ["a token outside the vocabulary", "/v1/completions", { prompt: [1, 99999] }, 400, auth, "prompt"],
    ["a bad schedule", "/v1/completions", { prompt: "x", lazyllm: { schedule: "9:0.5" } }, 400, auth, "lazyllm.schedule"],
    ["chat roles out of order", "/v1/chat/completions", { messages: [{ role: "assistant", content: "x" }] }, 400, auth, "messages"],
    ["an oversized body", "/v1/completions", { prompt: "x".repeat(70000) }, 413],
    ["an unknown model", "/v1/completions", { model: "gpt-4", prompt: "x" }, 404, auth, "model"],
    ["an unknown endpoint", "/v1/embeddings", { input: "x" }, 404],
  ];
  for (const [what, path, body, status, headers = auth, param] of cases) {
    const r = await post(path, body, headers);
    log(`${what}: ${r.status} ${r.text.slice(0, 160)}`);
    check(r.status === status, `${what}: status ${status} (got ${r.status})`);
    check(r.json && r.json.error && typeof r.json.error.message === "string" && r.json.error.type, `${what}: an error object`);
    if (param) check(r.json.error.param === param, `${what}: param ${param} (got ${r.json.error.param})`);
    if (status === 401) check(r.headers.get("www-authenticate") === "Bearer", "401 says Bearer");
    await ok();
  }
  // /tokenize and /detokenize round-trip; /metrics has what docs/server.md lists.
  const tok = await post("/tokenize", { content: "Where does Marek Yates live?", add_special: true });
  check(tok.status === 200 && tok.json.tokens[0] === 1 && tok.json.tokens.length > 3, `/tokenize (${tok.text})`);
  const detok = await post("/detokenize", { tokens: tok.json.tokens });
  check(detok.status === 200 && detok.json.content === "Where does Marek Yates live?", `/detokenize (${detok.text})`);
  check((await post("/tokenize", { text: "x" })).status === 400, "/tokenize refuses an unknown field");
  check((await post("/detokenize", { tokens: [99999] })).status === 400, "/detokenize refuses a token outside the vocabulary");
  const names = Object.keys(await metrics(url, auth));
  for (const n of ["requests_running", "requests_waiting", "prompt_tokens_per_second", "generation_tokens_per_second",
                   "pool_blocks_used", "pool_blocks_free", "token_layers_computed_total", "token_layers_dense_total"])
    check(names.includes(n), `/metrics has lazyllm_${n}`);

  // The key guards every endpoint but the page and /health.
  check((await request(`${url}/health`)).status === 200, "/health needs no key");
  check((await request(`${url}/`)).status === 200, "the page needs no key");
  check((await request(`${url}/metrics`)).status === 401, "/metrics needs the key");
  check((await request(`${url}/v1/models`)).status === 401, "/v1/models needs the key");
  check((await request(`${url}/v1/models`, { headers: auth })).status === 200, "/v1/models with the key");

  // A flood: one request in the engine and two waiting; the rest get 503 with Retry-After.
  const flood = Array.from({ length: 10 }, () => new AbortController());
  const started = flood.map((ctl) =>
    request(`${url}/v1/completions`, {
      method: "POST",
      headers: auth,
      signal: ctl.signal,
      body: { prompt: "Once upon a time", max_tokens: 1000, stream: true, lazyllm: { ignore_eos: true } },
    }),
  );
  const res = await Promise.all(started);
  const codes = res.map((r) => r.status);
  log(`flood: ${codes.join(" ")}`);
  const busy = res.filter((r) => r.status === 503);
  check(codes.every((c) => c === 200 || c === 503), "each flood request is served or refused with 503");
  // 3 fit (1 running, 2 waiting); one more may slip in while the first is being admitted.
  check(busy.length >= 10 - 4, `most of the flood is refused (${busy.length} of 10)`);
  for (const r of busy) {
    check(r.headers.get("retry-after") === "1", "503 says Retry-After");
    const j = await r.json();
    check(j.error && j.error.code === "queue_full", "503 has an error object");
  }
  for (const ctl of flood) ctl.abort();
  const m = await metrics(url, auth);
  check(m.requests_rejected_total >= busy.length, "the refusals are counted");
  await ok();
  check((await metrics(url, auth)).requests_failed_total === 0, "no request failed on the server's side");

  // The command line: each refusal is one line and exit code 1 or 2; the running server is unaffected.
  const cli = (args) => spawnSync(SERVER, ["-m", MODEL, ...args], { encoding: "utf8", timeout: 60000 });
  const port = new URL(url).port;
  let r = cli(["--port", port]);
  check(r.status === 1 && /cannot listen on 127\.0\.0\.1:\d+/.test(r.stderr), `a port in use is refused (${r.status}: ${r.stderr.trim()})`);
  r = cli(["--port", "0", "--pool-mb", "99999999"]);
  check(r.status === 1 && /not enough memory for the model and its KV block pool/.test(r.stderr), `an impossible pool (${r.status}: ${r.stderr.trim()})`);
  r = cli(["--port", "0", "--bogus"]);
  check(r.status === 2 && /unknown option '--bogus'/.test(r.stderr), `an unknown flag (${r.status})`);
  r = cli(["--port", "0", "-c", "99999"]);
  check(r.status === 2 && /context 99999/.test(r.stderr), `a context beyond the model's (${r.status}: ${r.stderr.trim()})`);
  await ok();
  check((await server.stop()) === 0, "the server exits 0 on SIGTERM");
});
