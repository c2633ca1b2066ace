// lazyllm-server on the CUDA engine (ctest label gpu; built with -DLAZYLLM_SERVER_CUDA=ON): on
// the demo model, concurrent requests with mixed schedules give on the GPU in fp32 the CPU
// server's greedy text, and in bf16 every request completes; a dropped stream gives its blocks
// back; nothing fails.
import { check, events, log, MODEL, postJson, qaPrompt, request, run, startServer, streamText, waitMetrics, watchdog } from "./harness.mjs";

watchdog(280);
const schedules = [null, "3:0.3,5:0.5", "2:0.5", "1:0.5,3:0.5,5:0.5"];
const questions = ["Where does Marek Yates live?", "Who is Jonas Nyberg's friend?", "What is Aron Ferrari's pet?"];

function bodyOf(i) {
  const body = { prompt: i % 3 === 0 ? "Once upon a time" : qaPrompt(questions[i % 3]), max_tokens: 12, temperature: 0,
                 lazyllm: { ignore_eos: i % 2 === 0 } };
  if (schedules[i % 4]) body.lazyllm.schedule = schedules[i % 4];
  return body;
}

async function serveAll(url, n) {
  return Promise.all(Array.from({ length: n }, async (_, i) => {
    if (i % 2) return (await streamText(url, "/v1/completions", bodyOf(i), { timeout: 120000 })).text;
    const r = await postJson(`${url}/v1/completions`, bodyOf(i), { timeout: 120000 });
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
    return r.json.choices[0].text;
  }));
}

run(async () => {
  const common = ["-m", MODEL, "-c", "1024", "-np", "6"];
  const cpu = await startServer([...common, "--backend", "cpu"]);
  const want = await serveAll(cpu.url, 16);
  await cpu.stop();
  for (const precision of ["fp32", "bf16"]) {
    const gpu = await startServer([...common, "--backend", "cuda", "--precision", precision]);
    const models = await (await request(`${gpu.url}/v1/models`)).json();
    check(models.data[0].lazyllm.backend !== "cpu", `the server runs on the GPU (${models.data[0].lazyllm.backend})`);
    const got = await serveAll(gpu.url, 16);
    let same = 0;
    for (let i = 0; i < got.length; ++i) same += got[i] === want[i] ? 1 : 0;
    log(`${precision}: ${same} of ${got.length} texts equal to the CPU server's`);
    if (precision === "fp32")
      for (let i = 0; i < got.length; ++i) check(got[i] === want[i], `fp32 request ${i}: ${JSON.stringify(got[i])} vs CPU ${JSON.stringify(want[i])}`);
    // A dropped stream.
    const ctl = new AbortController();
    const res = await request(`${gpu.url}/v1/completions`, { method: "POST", signal: ctl.signal,
      body: { prompt: "Once upon a time", max_tokens: 900, stream: true, lazyllm: { ignore_eos: true } } });
    const it = events(res)[Symbol.asyncIterator]();
    for (let k = 0; k < 3; ++k) await it.next();
    ctl.abort();
    const m = await waitMetrics(gpu.url, (m) => m.requests_cancelled_total === 1 && m.requests_running === 0, "the dropped stream to leave");
    check(m.pool_blocks_used === 0 && m.cancel_delay_steps_max <= 1, "its blocks are back within one step");
    check(m.requests_failed_total === 0, "nothing failed");
    check((await gpu.stop()) === 0, "the server exits 0");
  }
});
