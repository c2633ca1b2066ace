// Clients that leave: a stream dropped mid-way (alone, and while another request keeps the
// engine stepping) and a non-streamed request whose client gives up. Each one's sequence leaves
// the engine within one step of the server seeing the hang-up (cancel_delay_steps_max <= 1), its
// blocks are back in the pool (read from /metrics), and the server goes on serving: the other
// request ends normally, and a new one gets the same text as before the drops.
import { check, events, log, metrics, MODEL, postJson, request, run, startServer, waitMetrics, watchdog } from "./harness.mjs";

watchdog(200);
const LONG = { prompt: "Once upon a time", max_tokens: 1500, temperature: 0, lazyllm: { ignore_eos: true } };

/// Starts a streamed request; resolves once `n` tokens came, with a function that drops it.
async function streamUntil(url, body, n) {
  const ctl = new AbortController();
  const res = await request(`${url}/v1/completions`, { method: "POST", body: { ...body, stream: true }, signal: ctl.signal, timeout: 120000 });
  check(res.status === 200, `stream starts (${res.status})`);
  const it = events(res)[Symbol.asyncIterator]();
  let got = 0;
  while (got < n) {
    const { value, done } = await it.next();
    check(!done && value !== "[DONE]", "the stream is still going");
    ++got;
  }
  return {
    drop() {
      ctl.abort();
      it.return?.().catch(() => {});
    },
    async rest() {
      let text = "", tokens = got;
      for (;;) {
        const { value, done } = await it.next();
        if (done || value === "[DONE]") break;
        const j = JSON.parse(value);
        if (j.choices.length && j.choices[0].finish_reason === null) ++tokens;
        text += j.choices[0]?.text ?? "";
      }
      return tokens;
    },
  };
}

run(async () => {
  const server = await startServer(["-m", MODEL, "-c", "2048", "-np", "4"]);
  const url = server.url;
  const before = await postJson(`${url}/v1/completions`, { prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
  check(before.status === 200, "a first request");

  // 1. A stream dropped while it is the only request.
  let m0 = await metrics(url);
  const a = await streamUntil(url, LONG, 5);
  a.drop();
  let m = await waitMetrics(url, (m) => m.requests_cancelled_total === m0.requests_cancelled_total + 1, "the dropped stream to be cancelled");
  check(m.requests_running === 0 && m.pool_blocks_used === 0, `its blocks are back (${m.pool_blocks_used} used)`);
  check(m.cancel_delay_steps_max <= 1, `it left within one step of the cancel (${m.cancel_delay_steps_max})`);
  const generated = m.generation_tokens_total - m0.generation_tokens_total;
  log(`dropped stream: ${generated} tokens generated of ${LONG.max_tokens}`);
  check(generated < LONG.max_tokens, "generation stopped when the client left");

  // 2. A stream dropped while another request runs: the engine keeps stepping for the other one.
  m0 = await metrics(url);
  const keep = await streamUntil(url, { ...LONG, max_tokens: 300 }, 1);
  const b = await streamUntil(url, LONG, 5);
  const used = (await metrics(url)).pool_blocks_used;
  b.drop();
  m = await waitMetrics(url, (m) => m.requests_cancelled_total === m0.requests_cancelled_total + 1, "the second dropped stream to be cancelled");
  check(m.requests_running <= 1, "only the other request runs");
  check(m.pool_blocks_used < used, `the dropped request's blocks are back (${m.pool_blocks_used} < ${used})`);
  check(m.cancel_delay_steps_max <= 1, `within one step (${m.cancel_delay_steps_max})`);
  const kept = await keep.rest();
  check(kept === 300, `the other request ran to its length (${kept} tokens)`);

  // 3. A non-streamed request whose client gives up.
  m0 = await metrics(url);
  const ctl = new AbortController();
  const pending = request(`${url}/v1/completions`, { method: "POST", body: LONG, signal: ctl.signal }).catch((e) => e);
  await waitMetrics(url, (m) => m.requests_running === 1 && m.generation_tokens_total > m0.generation_tokens_total + 5, "the request to run");
  ctl.abort();
  await pending;
  m = await waitMetrics(url, (m) => m.requests_cancelled_total === m0.requests_cancelled_total + 1, "the abandoned request to be cancelled");
  check(m.pool_blocks_used === 0, "its blocks are back");

  // The server keeps serving, with the same answer as before the drops.
  const after = await postJson(`${url}/v1/completions`, { prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
  check(after.status === 200 && after.json.choices[0].text === before.json.choices[0].text, "the same text after the drops");
  m = await metrics(url);
  check(m.requests_failed_total === 0, "nothing failed");

  // SIGTERM during a long stream: the stream ends with an error event, and the server exits 0.
  const last = await request(`${url}/v1/completions`, { method: "POST", body: { ...LONG, stream: true }, timeout: 60000 });
  const it = events(last)[Symbol.asyncIterator]();
  await it.next();
  const t0 = Date.now();
  const exit = server.stop();
  let sawError = false;
  for (;;) {
    const { value, done } = await it.next();
    if (done || value === "[DONE]") break;
    const j = JSON.parse(value);
    if (j.error) sawError = /shutting down/.test(j.error.message);
  }
  check(sawError, "the stream was told the server is shutting down");
  check((await exit) === 0, "the server exits 0 on SIGTERM");
  log(`stopped in ${Date.now() - t0} ms with a stream in flight`);
});
