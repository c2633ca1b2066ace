// The official OpenAI client (npm package `openai`) against lazyllm-server on the demo model:
// completions and chat, streaming and not, dense and LazyLLM; greedy text identical to
// lazyllm-llama2's for the same prompt and schedule; usage with the lazyllm extension; an
// error the client reports with its status.
import { spawnSync } from "node:child_process";
import { check, log, MODEL, npmPackage, qaPrompt, run, startServer, watchdog } from "./harness.mjs";

watchdog(280);
const DRIVER = process.env.LAZYLLM_LLAMA2;

/// lazyllm-llama2's greedy text for `prompt` (the driver streams it to stdout, then a newline).
function driverText(prompt, n, schedule) {
  const args = ["-m", MODEL, "-p", prompt, "-n", String(n), "--no-mem-check"];
  if (schedule) args.push("--policy", "lazy", "--schedule", schedule);
  const r = spawnSync(DRIVER, args, { encoding: "utf8", timeout: 120000 });
  if (r.status !== 0) throw new Error(`lazyllm-llama2 failed (${r.status}): ${r.stderr}`);
  check(r.stdout.endsWith("\n"), "the driver ends its text with a newline");
  return r.stdout.slice(0, -1);
}

run(async () => {
  const { default: OpenAI } = await npmPackage("openai@4", "openai");
  const server = await startServer(["-m", MODEL, "-c", "2048", "-np", "2"]);
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", timeout: 60000, maxRetries: 0 });

  const models = await client.models.list();
  const model = models.data[0].id;
  check(model === "lazyqa", `the model id is lazyqa (got ${model})`);

  const cases = [
    { prompt: "Once upon a time", n: 24, schedule: null },
    { prompt: "Once upon a time", n: 24, schedule: "2:0.5,4:0.5" },
    { prompt: qaPrompt("Who is Jonas Nyberg's friend?"), n: 8, schedule: null },
    { prompt: qaPrompt("Who is Jonas Nyberg's friend?"), n: 8, schedule: "3:0.3,5:0.5" },
  ];
  for (const c of cases) {
    const want = driverText(c.prompt, c.n, c.schedule);
    const extra = c.schedule ? { lazyllm: { schedule: c.schedule } } : {};
    // Not streamed.
    const r = await client.completions.create({ model, prompt: c.prompt, max_tokens: c.n, temperature: 0, ...extra });
    const got = r.choices[0].text;
    log(`completion (${c.schedule ?? "dense"}): ${JSON.stringify(got)}; driver: ${JSON.stringify(want)}`);
    check(got === want, `completions text equals lazyllm-llama2's (${JSON.stringify(got)} vs ${JSON.stringify(want)})`);
    check(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0, "usage counts tokens");
    check(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, "total = prompt + completion");
    const x = r.usage.lazyllm;
    check(x && x.ttft_ms > 0, "usage.lazyllm.ttft_ms");
    if (c.schedule) check(x.prefill_token_layers_fraction < 1, `a schedule prunes (${x.prefill_token_layers_fraction})`);
    else check(x.prefill_token_layers_fraction === 1, "dense computes every token-layer");
    // Streamed.
    const stream = await client.completions.create({
      model, prompt: c.prompt, max_tokens: c.n, temperature: 0, stream: true, stream_options: { include_usage: true }, ...extra,
    });
    let text = "", chunks = 0, usage = null, finish = null;
    for await (const part of stream) {
      if (part.usage) usage = part.usage;
      for (const ch of part.choices) {
        text += ch.text;
        ++chunks;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    check(text === want, `streamed text equals the driver's (${JSON.stringify(text)})`);
    check(chunks >= 2, "streamed in several chunks");
    check(finish === "stop" || finish === "length", `a finish reason (${finish})`);
    check(usage && usage.completion_tokens === r.usage.completion_tokens, "streamed usage equals the unstreamed one");
  }

  // Chat: the qa format puts the system message (the documents) before "Question: ...\nAnswer:",
  // so the answer is the driver's on that text.
  const question = "Who is Jonas Nyberg's friend?";
  for (const schedule of [null, "3:0.3,5:0.5"]) {
    const want = driverText(qaPrompt(question), 8, schedule);
    const extra = schedule ? { lazyllm: { schedule } } : {};
    const messages = [
      { role: "system", content: qaPrompt("").replace(/Question: \nAnswer:$/, "") },
      { role: "user", content: question },
    ];
    const r = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, ...extra });
    const got = r.choices[0].message.content;
    log(`chat (${schedule ?? "dense"}): ${JSON.stringify(got)}; driver: ${JSON.stringify(want)}`);
    check(r.choices[0].message.role === "assistant", "an assistant message");
    check(got === want, `chat text equals the driver's on the formatted prompt (${JSON.stringify(got)} vs ${JSON.stringify(want)})`);
    check(got.includes("Elias Kendall"), "the demo model answers from the documents");
    const stream = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, stream: true, ...extra });
    let text = "", role = null;
    for await (const part of stream) {
      const d = part.choices[0]?.delta;
      if (d?.role) role = d.role;
      text += d?.content ?? "";
    }
    check(role === "assistant", "the first chunk names the role");
    check(text === want, `streamed chat text equals the driver's (${JSON.stringify(text)})`);
  }

  // Sampling with a seed is repeatable; stop strings cut the text.
  const sampled = async () =>
    (await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 16, temperature: 0.9, top_k: 40, top_p: 0.95, min_p: 0.01, seed: 42 })).choices[0].text;
  const s1 = await sampled(), s2 = await sampled();
  check(s1 === s2, `seeded sampling repeats (${JSON.stringify(s1)} vs ${JSON.stringify(s2)})`);
  const full = driverText("Once upon a time", 24, null);
  const cut = full.indexOf("What");
  check(cut > 0, "the reference text has the stop string");
  const stopped = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0, stop: ["What"] });
  check(stopped.choices[0].text === full.slice(0, cut), `stop cuts the text (${JSON.stringify(stopped.choices[0].text)})`);
  check(stopped.choices[0].finish_reason === "stop", "finish_reason stop at a stop string");
  const stoppedStream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0, stop: "What", stream: true });
  let streamedText = "", streamedFinish = null;
  for await (const part of stoppedStream)
    for (const ch of part.choices) {
      streamedText += ch.text;
      if (ch.finish_reason) streamedFinish = ch.finish_reason;
    }
  check(streamedText === full.slice(0, cut) && streamedFinish === "stop", `a streamed stop string (${JSON.stringify(streamedText)}, ${streamedFinish})`);

  // The client sees the server's errors with their status.
  let status = 0;
  try {
    await client.completions.create({ model, prompt: "x", max_tokens: 4, n: 3 });
  } catch (e) {
    status = e.status;
    check(/n/.test(e.message), `the error names the field (${e.message})`);
  }
  check(status === 400, `n = 3 is refused with 400 (got ${status})`);
  check((await server.stop()) === 0, "the server exits 0 on SIGTERM");
});
