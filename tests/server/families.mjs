// lazyllm-server on a Hugging Face directory of today's families: a tiny Llama 3-shaped checkpoint
// with the real vocabulary (tests/make_tiny_hf.py) and the shared Llama 3 tokenizer.json beside it.
// Text prompts are encoded as Hugging Face does, chat requests render the Llama 3 format the
// driver renders (its --chat --verbose-prompt count), and config.json's EOS ids end a completion
// with finish_reason "stop". Exit 77 (skipped) when ../shared/models/tokenizers is absent or the
// build has no tokenizer.json support.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { check, log, postJson, run, skip, startServer, watchdog } from "./harness.mjs";

watchdog(240);
const TOKS = process.env.LAZYLLM_TOKENIZERS;
const PY = process.env.LAZYLLM_PYTHON;
const DRIVER = process.env.LAZYLLM_LLAMA2;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
if (!TOKS || !existsSync(path.join(TOKS, "llama3", "tokenizer.json")))
  skip(`${TOKS}/llama3/tokenizer.json not found (../shared absent)`);
if (!["ON", "1", "TRUE"].includes(process.env.LAZYLLM_HF_TOKENIZER || ""))
  skip("built without tokenizer.json support (LAZYLLM_HF_TOKENIZER)");
if (!PY) skip("python3 not found");

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r;
}

run(async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "lazyllm-families-"));
  process.on("exit", () => rmSync(work, { recursive: true, force: true }));
  const dir = path.join(work, "llama3");
  sh(PY, [path.join(ROOT, "tests", "make_tiny_hf.py"), dir, "llama3", "128256"]);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(TOKS, "llama3", f), path.join(dir, f));

  // The driver's Llama 3 chat prompt for one user message, to compare with the server's.
  const d = sh(DRIVER, ["-m", dir, "--chat", "-p", "Hi", "-n", "1", "--verbose-prompt"]);
  const dm = /prompt: (\d+) tokens \(chat/.exec(d.stderr);
  check(dm, `the driver's chat prompt count in:\n${d.stderr}`);
  const driverChat = Number(dm[1]);

  let server = await startServer(["-m", dir, "-np", "1", "-c", "256"], { quiet: true });
  check(/chat format llama3/.test(server.log()), `chat format llama3 picked:\n${server.log()}`);
  const post = (p, body) => postJson(`${server.url}${p}`, body, { timeout: 60000 });

  // "Hello world" is [128000, 9906, 1917] in Hugging Face tokenizers (BOS added).
  const tk = await post("/tokenize", { content: "Hello world", add_special: true });
  check(tk.status === 200 && JSON.stringify(tk.json.tokens) === "[128000,9906,1917]", `/tokenize: ${tk.text}`);
  const c = await post("/v1/completions", { prompt: "Hello world", max_tokens: 2, lazyllm: { ignore_eos: true } });
  check(c.status === 200 && c.json.usage.prompt_tokens === 3, `completion prompt_tokens 3: ${c.text}`);
  log("completion:", JSON.stringify(c.json.usage));

  const chat = await post("/v1/chat/completions", {
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
    lazyllm: { ignore_eos: true },
  });
  check(chat.status === 200, `chat: ${chat.text}`);
  check(chat.json.usage.prompt_tokens === driverChat,
        `chat prompt_tokens ${chat.json.usage.prompt_tokens} == the driver's ${driverChat}`);
  // The rendered header and end-of-turn tokens, as the driver shows them.
  for (const id of [128000, 128006, 128007, 128009])
    check(new RegExp(`\\b${id} -> ''`).test(d.stderr), `the driver's prompt has token ${id}`);

  // The greedy first token after "Hello world" (the driver's; the server computes the same), then
  // that token among config.json's eos_token_id: the same request ends at once with "stop".
  const g = await post("/v1/completions", { prompt: [128000, 9906, 1917], max_tokens: 1, temperature: 0 });
  check(g.status === 200 && g.json.choices[0].finish_reason === "length", `greedy: ${g.text}`);
  await server.stop();
  const ids = sh(DRIVER, ["-m", dir, "--prompt-ids", "128000,9906,1917", "-n", "1", "--ignore-eos", "--print-ids"]);
  const first = ids.stdout.trim().split(/[\s,]+/).map(Number);
  check(first.length === 1 && Number.isInteger(first[0]), `one token id from the driver: '${ids.stdout}'`);
  const cfgPath = path.join(dir, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  cfg.eos_token_id = [...cfg.eos_token_id, first[0]];
  writeFileSync(cfgPath, JSON.stringify(cfg));
  server = await startServer(["-m", dir, "-np", "1", "-c", "256"], { quiet: true });
  const s = await postJson(`${server.url}/v1/completions`, {
    prompt: [128000, 9906, 1917],
    max_tokens: 4,
    temperature: 0,
  });
  check(s.status === 200 && s.json.choices[0].finish_reason === "stop" && s.json.usage.completion_tokens === 0,
        `stopped at config.json's EOS ${first[0]}: ${s.text}`);
  await server.stop();
});
