// 32 concurrent clients with mixed schedules (and mixed streaming): each greedy reply identical
// to the same request served alone, on a pool small enough that requests wait for blocks (and may
// be preempted); nothing fails and every block is back at the end.
import { check, log, metrics, MODEL, postJson, qaPrompt, run, startServer, streamText, waitMetrics, watchdog } from "./harness.mjs";

watchdog(280);

const schedules = [null, "3:0.3,5:0.5", "2:0.5", "gentle", "1:0.5,3:0.5,5:0.5"];
const questions = [
  "Where does Marek Yates live?", "Who is Jonas Nyberg's friend?", "What is Aron Ferrari's pet?",
  "When was Jonas Nyberg born?", "What does Marek Yates work as?", "What is Aron Ferrari's favourite colour?",
];
const stories = ["Once upon a time", "Question: Where", "Document 7: Greta", "The friend of"];

function request(i) {
  const schedule = schedules[i % schedules.length];
  const chat = i % 4 === 3;
  const body = { max_tokens: 10 + (i % 7), temperature: 0, lazyllm: { ignore_eos: i % 2 === 0 } };
  if (schedule) body.lazyllm.schedule = schedule;
  if (chat) {
    body.messages = [{ role: "system", content: qaPrompt("").replace(/Question: \nAnswer:$/, "") }, { role: "user", content: questions[i % questions.length] }];
  } else {
    // Prompts of 5 to ~180 tokens: a document set and a question, or a short opening.
    body.prompt = i % 3 === 0 ? stories[i % stories.length] : qaPrompt(questions[i % questions.length]);
  }
  return { endpoint: chat ? "/v1/chat/completions" : "/v1/completions", body, stream: i % 2 === 1 };
}

async function serve(url, r) {
  if (r.stream) return (await streamText(url, r.endpoint, r.body, { timeout: 120000 })).text;
  const res = await postJson(`${url}${r.endpoint}`, r.body, { timeout: 120000 });
  if (res.status !== 200) throw new Error(`${r.endpoint}: HTTP ${res.status}: ${res.text}`);
  const c = res.json.choices[0];
  return c.text ?? c.message.content;
}

run(async () => {
  // 8 in the engine at once, in a pool of 480 blocks of 16 tokens: about four of these requests'
  // worst cases, so admission waits for blocks and a step may run out of them.
  const server = await startServer(["-m", MODEL, "-c", "1024", "-np", "8", "--kv-blocks", "480"]);
  const reqs = Array.from({ length: 32 }, (_, i) => request(i));
  const alone = [];
  const t0 = Date.now();
  for (const r of reqs) alone.push(await serve(server.url, r));
  log(`32 requests one at a time: ${Date.now() - t0} ms`);
  const t1 = Date.now();
  const together = await Promise.all(reqs.map((r) => serve(server.url, r)));
  log(`32 requests at once: ${Date.now() - t1} ms`);
  for (let i = 0; i < reqs.length; ++i)
    check(together[i] === alone[i], `request ${i} (${JSON.stringify(reqs[i].body.lazyllm)}): ${JSON.stringify(together[i])} vs alone ${JSON.stringify(alone[i])}`);
  check(new Set(alone).size > 5, "the requests differ");
  const m = await waitMetrics(server.url, (m) => m.requests_running === 0 && m.requests_waiting === 0, "the server to be idle");
  log(`metrics: peak ${m.pool_blocks_peak} of ${m.pool_blocks_total} blocks, ${m.preemptions_total} preemptions, ${m.steps_total} steps`);
  check(m.pool_blocks_used === 0, "every block is back in the pool");
  check(m.requests_failed_total === 0 && m.requests_rejected_total === 0, "nothing failed or was refused");
  check(m.requests_finished_total === 64, `64 requests finished (${m.requests_finished_total})`);
  check(m.token_layers_computed_total < m.token_layers_dense_total, "the LazyLLM requests pruned");
  check((await server.stop()) === 0, "the server exits 0 on SIGTERM");
});
