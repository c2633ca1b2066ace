// The chat page at / in headless Chromium (Debian's chromium, driven by playwright-core): it
// loads, names the model, and a question to the demo model streams an answer (several chunks),
// dense and with a LazyLLM schedule, with the usage line under it. Saves a screenshot.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { check, CONTEXT, log, MODEL, npmPackage, run, skip, startServer, watchdog } from "./harness.mjs";

watchdog(280);
const CHROMIUM = process.env.LAZYLLM_CHROMIUM || "/usr/bin/chromium";
const SHOT = process.env.LAZYLLM_SCREENSHOT || path.join(process.cwd(), "server-page.png");

run(async () => {
  if (!existsSync(CHROMIUM)) skip(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set LAZYLLM_CHROMIUM)`);
  const pw = await npmPackage("playwright-core@1", "playwright");
  const { chromium } = pw.default ?? pw;
  const server = await startServer(["-m", MODEL, "-c", "2048"]);
  const profile = mkdtempSync(path.join(os.tmpdir(), "lazyllm-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1180, height: 640 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(server.url + "/", { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById("model").textContent.startsWith("lazyqa"), null, { timeout: 30000 });
    log(`model line: ${await page.textContent("#model")}`);
    await page.fill("#system", CONTEXT.trim());
    await page.fill("#max_tokens", "16");

    const ask = async (question) => {
      const n = await page.locator(".msg.assistant").count();
      await page.fill("#input", question);
      await page.press("#input", "Enter");
      await page.waitForFunction(
        (k) => document.querySelectorAll(".msg.assistant").length > k && document.body.dataset.state === "done",
        n,
        { timeout: 60000 },
      );
      const reply = page.locator(".msg.assistant").nth(n);
      return {
        text: await reply.locator("span").first().textContent(),
        stats: (await reply.locator(".stats").count()) ? await reply.locator(".stats").textContent() : "",
        chunks: Number(await reply.getAttribute("data-chunks")),
        error: await reply.evaluate((e) => e.classList.contains("error")),
      };
    };
    const dense = await ask("Who is Jonas Nyberg's friend?");
    log(`dense reply: ${JSON.stringify(dense)}`);
    check(!dense.error, "no error");
    check(dense.text.includes("Elias Kendall"), "the answer comes from the documents");
    check(dense.chunks >= 2, `the answer streamed in several chunks (${dense.chunks})`);
    check(/TTFT [0-9.]+ ms/.test(dense.stats) && dense.stats.includes("dense"), `the usage line (${dense.stats})`);

    await page.fill("#schedule", "3:0.3,5:0.5");
    const lazy = await ask("Who is Aron Ferrari's friend?");
    log(`LazyLLM reply: ${JSON.stringify(lazy)}`);
    check(!lazy.error && lazy.text.includes("Ennio Falk"), "the LazyLLM answer");
    check(lazy.chunks >= 2, `streamed (${lazy.chunks})`);
    check(lazy.stats.includes("lazy(3:0.3,5:0.5)") && /prefill computed [0-9.]+% of dense/.test(lazy.stats), `its usage line (${lazy.stats})`);
    check(errors.length === 0, `no script errors (${errors.join("; ")})`);
    await page.screenshot({ path: SHOT });
    log(`screenshot: ${SHOT}`);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
  check((await server.stop()) === 0, "the server exits 0 on SIGTERM");
});
