// SPDX-License-Identifier: MIT
// Writes tests/data/hf_tokenizer/: a few thousand test strings and the ids Hugging Face's
// `tokenizers` (Rust, through its Node bindings) gives them with the Llama 3 and Qwen3
// tokenizer.json files, plus chat prompts rendered from the two tokenizer_config.json templates
// by @huggingface/jinja (the Jinja engine transformers.js uses). lazyllm's tests compare against
// these files (tests/cpu/test_hf_tokenizer.cpp, the tokenize_cli ctest).
//
//   cd tools/tokenizer && npm ci && node make_fixtures.mjs [--tokenizers DIR] [--out DIR]
//
// DIR defaults: ../shared/models/tokenizers (llama3/, qwen3/) and tests/data/hf_tokenizer, both
// relative to the repository root. The strings are generated from a fixed seed: running it again
// gives the same files.
//
// Files written:
//   strings.jsonl        one JSON string per line
//   llama3.ids.jsonl     the ids of each line's string, encode(s, addSpecialTokens: false), one
//   qwen3.ids.jsonl        JSON array per line (what `lazyllm-tokenize --jsonl --no-bos` prints)
//   meta.json            per tokenizer: what addSpecialTokens: true adds (checked on every
//                        string), ids with special-token text treated as plain text, HF's decode
//                        where it differs from the string, decodes of id sequences that split
//                        UTF-8 characters; the tokenizer.json sha256 the ids came from
//   chat.json            chat renderings (add_generation_prompt true and false) and their ids
//   tiny/NAME.json       small hand-made tokenizer.json files that use what the two real ones do
//                        not (added-token flags, NFC-normalised added tokens, GPT-2's regex, a
//                        Split string, unk_token, TemplateProcessing with a suffix),
//   tiny/strings.jsonl     a few hundred strings for them,
//   tiny/NAME.ids.jsonl    their ids (as above), and
//   tiny.json              what addSpecialTokens adds, HF's decodes that differ from the string
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import tokenizers from "tokenizers";
import { Template } from "@huggingface/jinja";

const { Tokenizer } = tokenizers;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}
const tokDir = path.resolve(root, option("--tokenizers", "../shared/models/tokenizers"));
const outDir = path.resolve(root, option("--out", "tests/data/hf_tokenizer"));
const NAMES = ["llama3", "qwen3"];

// ------------------------------------------------------------------------------ random strings

let seed = 0x1a2b3c4d;
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];
const cp = (c) => String.fromCodePoint(c);
const range = (lo, hi) => cp(lo + int(hi - lo + 1));
function repeat(n, f) {
  let s = "";
  for (let i = 0; i < n; ++i) s += f(i);
  return s;
}

const WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they " +
  "which one you were her all she there would their we him been has when who will more no if out so said what up " +
  "its about into than them can only other new some could time these two may then do first any my now such like " +
  "our over man me even most made after also did many before must through back years where much your way well down " +
  "should because each just those people how too little state good very make world still own see men work long get " +
  "here between both life being under never day same another know while last might us great old year off come since " +
  "against go came right used take three tokenizer pruning attention layer cache prompt lazy dynamic transformer " +
  "encoding decoding Hello World OpenAI Llama Qwen Mistral GPU CUDA JSON HTTP URL API").split(" ");
const PUNCT = [".", ",", "!", "?", ";", ":", "...", "?!", " -", " --", " (", ")", "\"", "'", " [", "]", "/", " &", " %", " #",
  " @", "*", "_", "~", "`", "|", " <", ">", " =", "+", "^", "{", "}", "\\", "$", "¿", "¡", "«", "»", "—", "–", "…", "·", "°"];
const SPACES = ["\u00a0", "\u2002", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\u1680", "\u0085",
  "\u2028", "\u2029", "\u180e", "\u200b", "\ufeff", "\u000b", "\u000c", "\u001c", "\u001f"];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'ſ", "'K",
  "’s", "’t", "'x", "''", "'", "n't", "N'T"];
const SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
  "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|finetune_right_pad_id|>", "<|python_tag|>",
  "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<|vision_pad|>",
  "<|fim_prefix|>", "<|im_start", "im_end|>", "<|eot_id|", "<|", "|>", "< |im_end| >", "<|IM_END|>", "<s>", "</s>",
  "[INST]", "<unk>"];
const EMOJI = ["😀", "😂", "🥲", "❤️", "❤", "👍", "👍🏻", "👍🏽", "👍🏿", "👋🏼", "🧑🏾‍💻", "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🏳️‍🌈",
  "🏴‍☠️", "🇫🇷", "🇯🇵", "🇺🇸🇬🇧", "1️⃣", "#️⃣", "©️", "™", "🫶🏽", "🧔‍♀️", "🐈‍⬛", "😶‍🌫️", "👁️‍🗨️", "🤌", "🦀", "🚀", "✨", "🔥",
  "💯", "🏃‍♀️‍➡️", "🫠", "🪿", "☺︎", "\u{1F3FB}", "\u200d", "\ufe0f"];
const CJK = ["我们的模型在长文本上运行得很快。", "你好，世界！", "東京は日本の首都です。", "ひらがなとカタカナ、漢字。",
  "カタカナのテキスト", "天気がいいですね", "中华人民共和国", "繁體中文測試", "「引用」と『二重』", "数字１２３と全角ＡＢＣ",
  "汉字 和 English 混合", "𠀀𠀁𪚥", "〇一二三四五六七八九十", "ｶﾀｶﾅ半角", "㍿㌔"];
const HANGUL = ["안녕하세요", "한국어 텍스트입니다.", "세계", "대한민국의 수도는 서울입니다", "ㄱㄴㄷ ㅏㅑ", "똠방각하", "훈민정음"];
const OTHER_SCRIPTS = ["Привет, мир!", "Ελληνικά γράμματα", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
  "Tiếng Việt có dấu", "ქართული", "Հայերեն", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟏𝟐𝟑", "ǅungla", "İstanbul ıi", "ß ẞ ﬁ ﬀ"];
// NFC-relevant pairs: decomposed (or non-canonical order) and precomposed forms.
const NFC = ["cafe\u0301", "café", "A\u030a", "\u00c5", "\u212b", "n\u0303", "ñ", "Tie\u0302\u0301ng Vie\u0323\u0302t",
  "a\u0323\u0302", "a\u0302\u0323", "\u1100\u1161\u11a8", "각", "\u1112\u1161\u11ab\u1100\u1173\u11af", "e\u0301\u0301",
  "\u0301abc", "o\u0308\u0304", "ȫ", "\u03b1\u0301", "ά", "\u0958", "\u0915\u093c", "\u2126", "Ω", "\u212a", "K", "Å",
  "\u0041\u030a\u0301", "ﬁ", "x\u0327\u0306", "\u0e40\u0e01\u0e34\u0e4a", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo"];
const CODE = [
  "int main(int argc, char** argv) {\n  return 0;\n}\n",
  "for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];",
  "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
  "\tif (x) {\n\t\ty = x->next;\n\t}\n",
  "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "$ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2",
  "const f = (a, b) => a?.b ?? `template ${b}`;",
  "#include <vector>\n#include \"lazyllm/text/hf_tokenizer.hpp\"\n",
  "x+=1;y-=2;z*=3;w/=4;v%=5;u&=6;t|=7;s^=8;r<<=9;q>>=10;",
  "    \n    \n\t\t\n",
  "if a==b!=c<=d>=e&&f||!g:pass",
  "<div class=\"x\"><p>Hello &amp; goodbye</p></div>",
  "https://example.com/path/to/page?query=value&other=123#fragment",
  "user@example.org, 192.168.0.1:8080, /usr/local/bin/", "0x7fffffff 0b1010 1e-9 3.14f 42ULL",
  "fn main() { println!(\"{}\", vec![1, 2, 3].iter().sum::<i32>()); }",
  "a\tb\tc\n1\t2\t3\n", "\\n\\t\\\\ \\\"escaped\\\"", "λx.λy.x", "∀ε>0 ∃δ>0: |x−a|<δ ⇒ |f(x)−L|<ε"];

function word() {
  const w = pick(WORDS);
  const r = rand();
  return r < 0.1 ? w.toUpperCase() : r < 0.25 ? w[0].toUpperCase() + w.slice(1) : w;
}
function sentence(n) {
  let s = "";
  for (let i = 0; i < n; ++i) {
    if (i) s += rand() < 0.9 ? " " : pick(["  ", "\t", "\n", ", ", " - "]);
    s += word();
    if (rand() < 0.12) s += pick(PUNCT);
  }
  return s + pick([".", "!", "?", "", "\n", " ", "..."]);
}
function digits(n) {
  return repeat(n, () => String(int(10)));
}
function whitespaceRun() {
  return repeat(1 + int(6), () => pick([" ", " ", "  ", "\t", "\n", "\r\n", "\n\n", "\r", ...SPACES]));
}

const strings = [];
const seen = new Set();
function add(s) {
  if (typeof s !== "string" || seen.has(s)) return;
  seen.add(s);
  strings.push(s);
}

// Hand-picked cases first.
[
  "", " ", "  ", "\n", "\t", "\r\n", "Hello world", "Hello, world!", " Hello", "Hello ", "hello\nworld", "a", "A", "1", "12",
  "123", "1234", "12345", "123456789012345678901234567890", "3.14159", "1,000,000.00", "-42", "+7 (555) 123-4567",
  "2024-02-29T12:34:56Z", "v1.2.3", "x86_64", "1st 2nd 3rd 4th", "٣٤٥", "१२३", "Ⅻ", "½ ¾ ²³", "①②③",
  "It's", "it's", "IT'S", "don't", "DON'T", "they're", "I've", "I'm", "we'll", "he'd", "'s", "'", "''", "O'Neil",
  "rock 'n' roll", "it’s", "can't won't shan't", "Jones' house", "'ſ ſ'ſ", "the cat's 'toys'",
  "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>user\nHi<|im_end|>\n", "<think>\n\n</think>\n\n", "x<|eot_id|>y",
  "<|eot_id|><|eot_id|>", "<<|eot_id|>>", "<|im_end|>", "<|endoftext|>", "<|im_start|", "<|reserved_special_token_17|>",
  "\ufffd", "\ufffd\ufffd", "\u0000", "a\u0000b", "\u0001\u0002\u0003\u001f\u007f", "\ufeffBOM", "\u200b", "\u200d",
  "\ue000\uf8ff", "\u{10ffff}", "\u{f0000}", "\u{1d11e}", "\ufff9\ufffa\ufffb", "\u061c\u200e\u200f\u202a\u202e",
  "\u{e0001}\u{e0065}\u{e007f}",
].forEach(add);
for (const s of [...NFC, ...CJK, ...HANGUL, ...OTHER_SCRIPTS, ...CODE, ...EMOJI, ...SPACES, ...CONTRACTIONS, ...SPECIAL]) add(s);
for (const s of SPACES) {
  add("a" + s + "b");
  add("a " + s + " b");
  add(s + s + "x");
  add("x" + s + "\n");
}
for (let n = 1; n <= 40; ++n) add(digits(n));
for (const n of [64, 100, 257, 1000]) add(digits(n));
for (const n of [100, 511, 2000]) add("a".repeat(n));
add("ab".repeat(300));
add(" ".repeat(300));
add("\n".repeat(100));
add("\t".repeat(64));
add(" \n".repeat(50));
add("Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichen");
add("pneumonoultramicroscopicsilicovolcanoconiosis");
add("Lopadotemachoselachogaleokranioleipsanodrimhypotrimmatosilphiokarabomelitokatakechymenokichlepikossyphophattoperisteralektryonoptekephalliokigklopeleiolagoiosiraiobaphetraganopterygon");
add("😀".repeat(50));
add("👍🏽".repeat(20));
add("日本語".repeat(80));
add("한국어".repeat(60));
add("é".repeat(100));
add("e\u0301".repeat(100));
add("!".repeat(200));
add("=".repeat(80) + "\n" + "-".repeat(80));
add("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=");
add("deadbeef".repeat(16));

// Random strings by category.
const makers = [
  () => sentence(1 + int(12)),
  () => sentence(2 + int(6)) + " " + digits(1 + int(12)) + " " + sentence(1 + int(4)),
  () => pick(["", "$", "#", "x", " ", "v"]) + digits(1 + int(9)) + pick(["", ".", ",", " ", "%", "px", "e"]) + digits(int(7)),
  () => repeat(1 + int(4), () => pick(NFC) + pick(["", " ", "\n"])),
  () => repeat(1 + int(3), () => pick(CJK)) + pick(["", " ", "\n"]) + (rand() < 0.5 ? sentence(1 + int(3)) : ""),
  () => repeat(1 + int(3), () => pick(HANGUL) + pick(["", " ", "\n", "."])),
  () => repeat(1 + int(3), () => pick(OTHER_SCRIPTS) + pick(["", " ", "\n"])),
  () => sentence(1 + int(4)).trimEnd() + " " + repeat(1 + int(4), () => pick(EMOJI)) + pick(["", " ", "!", "\n"]),
  () => repeat(1 + int(6), () => pick(EMOJI)),
  () => pick(CODE) + (rand() < 0.3 ? pick(CODE) : ""),
  () => word() + whitespaceRun() + word() + (rand() < 0.5 ? whitespaceRun() : ""),
  () => whitespaceRun() + sentence(1 + int(3)) + whitespaceRun(),
  () => word() + pick(CONTRACTIONS) + " " + word() + pick(CONTRACTIONS) + pick(["", ".", " ", "!"]),
  () => pick(["", "I", "you", word()]) + pick(["", " "]) + pick(CONTRACTIONS) + pick(CONTRACTIONS),
  () => sentence(int(4)) + pick(SPECIAL) + (rand() < 0.5 ? "\n" : "") + sentence(int(4)) + (rand() < 0.4 ? pick(SPECIAL) : ""),
  () => repeat(1 + int(4), () => pick(SPECIAL) + pick(["", " ", "\n", "x"])),
  () => repeat(1 + int(8), () =>
    pick([() => range(0x20, 0x7e), () => range(0xa0, 0x24f), () => range(0x300, 0x36f), () => range(0x370, 0x3ff),
          () => range(0x400, 0x4ff), () => range(0x590, 0x6ff), () => range(0x900, 0x97f), () => range(0xe00, 0xe7f),
          () => range(0x1100, 0x11ff), () => range(0x2000, 0x206f), () => range(0x2100, 0x214f), () => range(0x2190, 0x22ff),
          () => range(0x3000, 0x303f), () => range(0x3040, 0x30ff), () => range(0x4e00, 0x9fa5), () => range(0xac00, 0xd7a3),
          () => range(0xff00, 0xffef), () => range(0x1f300, 0x1f5ff), () => range(0x1f900, 0x1f9ff), () => range(0x1d400, 0x1d7ff),
          () => range(0x0, 0x1f), () => pick(SPACES), () => range(0x2460, 0x24ff), () => range(0x10000, 0x1007f)])()),
  () => word().repeat(2 + int(30)),
  () => pick(["http://", "https://", "ftp://"]) + repeat(1 + int(4), () => word().toLowerCase() + pick([".", "/", "-", "_"])) + digits(int(4)),
  () => repeat(2 + int(5), () => word() + pick(["_", "-", ".", "::", "->", "(", ")", "[", "]", "=", ",", ";"])),
  () => digits(1 + int(3)) + pick([" ", "", "-", "/", ":", "."]) + digits(1 + int(3)) + pick([" ", "", "-", "/", ":", "."]) + digits(2 + int(3)),
];
while (strings.length < 2200) add(pick(makers)());

// --------------------------------------------------------------------------------- reference

function sha256(file) {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

// tokenizers' encode_special_tokens is not exposed by the Node bindings: the "plain" reference is
// the same tokenizer.json with the text of its special added tokens replaced by something no
// string contains (kept in place: tokenizers numbers added tokens by their order, so the others
// keep their ids). It splits and encodes the text the same way as long as no special token shares
// text with a non-special one, as in these two files.
function withoutSpecialTokens(file) {
  const j = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const t of j.added_tokens) if (t.special) t.content = `\u{10fffd}unmatchable ${t.id}\u{10fffd}`;
  const tmp = path.join(fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR || "/tmp"), "lazyllm-tok-")), "tokenizer.json");
  fs.writeFileSync(tmp, JSON.stringify(j));
  return tmp;
}

const specialRe = /<\||\|>|<\/?think>|<\/?tool_call>/;
const meta = { generator: "tools/tokenizer/make_fixtures.mjs", tokenizers: "0.23.2", count: strings.length, tokenizers_json: {} };
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "strings.jsonl"), strings.map((s) => JSON.stringify(s)).join("\n") + "\n");

for (const name of NAMES) {
  const file = path.join(tokDir, name, "tokenizer.json");
  const tok = Tokenizer.fromFile(file);
  const plainTok = Tokenizer.fromFile(withoutSpecialTokens(file));
  const lines = [];
  const m = { sha256: sha256(file), prefix: null, suffix: null, plain: {}, decode: {}, decode_ids: [] };
  {  // What addSpecialTokens adds before and after the ids of a string of plain words.
    const ids = (await tok.encode("Hello world", null, { addSpecialTokens: false })).getIds();
    const w = (await tok.encode("Hello world", null, { addSpecialTokens: true })).getIds();
    const p = w.findIndex((v, k) => ids.every((x, q) => w[k + q] === x));
    [m.prefix, m.suffix] = [w.slice(0, p), w.slice(p + ids.length)];
  }
  for (let i = 0; i < strings.length; ++i) {
    const s = strings[i];
    const ids = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    const withSpecial = (await tok.encode(s, null, { addSpecialTokens: true })).getIds();
    // addSpecialTokens must add the same tokens around every string.
    if (JSON.stringify(withSpecial) !== JSON.stringify([...m.prefix, ...ids, ...m.suffix]))
      throw new Error(`${name}: addSpecialTokens adds other tokens than ${JSON.stringify([m.prefix, m.suffix])} ` +
                      `to ${JSON.stringify(s)}: ${JSON.stringify(withSpecial)}`);
    lines.push(JSON.stringify(ids));
    if (specialRe.test(s)) m.plain[i] = (await plainTok.encode(s, null, { addSpecialTokens: false })).getIds();
    const back = await tok.decode(ids, false);
    if (back !== s) m.decode[i] = back;
  }
  // Decodes of id runs cut at arbitrary places (partial UTF-8 characters, special tokens inside).
  for (let k = 0; k < 40; ++k) {
    const s = strings[int(strings.length)] + pick(SPECIAL) + pick(EMOJI) + pick(CJK);
    const ids = (await tok.encode(s, null, { addSpecialTokens: true })).getIds();
    const b = int(ids.length), e = b + 1 + int(ids.length - b);
    const cut = ids.slice(b, e);
    if (rand() < 0.5) cut.reverse();
    m.decode_ids.push({ ids: cut, text: await tok.decode(cut, false), text_skip_special: await tok.decode(cut, true) });
  }
  fs.writeFileSync(path.join(outDir, `${name}.ids.jsonl`), lines.join("\n") + "\n");
  meta.tokenizers_json[name] = m;
}
fs.writeFileSync(path.join(outDir, "meta.json"), JSON.stringify(meta) + "\n");

// ------------------------------------------------------------------------------------- chats

const conversations = [
  [{ role: "user", content: "Hello!" }],
  [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "What is 2+2?" }],
  [{ role: "system", content: "Answer briefly." }, { role: "user", content: "Name a colour." },
   { role: "assistant", content: "Blue." }],
  [{ role: "system", content: "Answer briefly." }, { role: "user", content: "Name a colour." },
   { role: "assistant", content: "Blue." }, { role: "user", content: "Another one?" }],
  [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello! How can I help?" },
   { role: "user", content: "Tell me a joke." }, { role: "assistant", content: "Why did the token get pruned? It wasn't paying attention." }],
  [{ role: "user", content: "  padded with spaces and newlines \n\n" }, { role: "assistant", content: "\n\tindented answer  " },
   { role: "user", content: "\n" }],
  [{ role: "system", content: "" }, { role: "user", content: "" }],
  [{ role: "user", content: "Unicode: café, 日本語, 한국어, 👍🏽, e\u0301" }],
  [{ role: "user", content: "Special text inside: <|eot_id|> and <|im_end|> and <think>" }],
  [{ role: "system", content: "First system." }, { role: "user", content: "Q1" }, { role: "system", content: "A later system message." },
   { role: "user", content: "Q2" }],
  [{ role: "user", content: "Solve x+1=2." },
   { role: "assistant", content: "<think>\nSubtract one from both sides.\n</think>\n\nx = 1." }],
  [{ role: "user", content: "Solve x+1=2." },
   { role: "assistant", content: "<think>\nSubtract one.\n</think>\n\nx = 1." }, { role: "user", content: "And x+2=2?" }],
  [{ role: "user", content: "Q" }, { role: "assistant", content: "\n\nreasoning</think>\n\nanswer" },
   { role: "user", content: "<tool_response>\nresult\n</tool_response>" }, { role: "assistant", content: "After the tool." }],
  [{ role: "user", content: "Q" }, { role: "assistant", content: "<think>r1</think>A1" }, { role: "user", content: "Q2" },
   { role: "assistant", content: "<think>\nr2\n</think>A2" }, { role: "assistant", content: "A3 without thinking" }],
  [{ role: "assistant", content: "An assistant speaks first." }, { role: "user", content: "Then the user." }],
  [{ role: "system", content: "Line one.\nLine two.\n" }, { role: "user", content: "multi\nline\n\nuser text" }],
];

const chat = [];
for (const name of NAMES) {
  const config = JSON.parse(fs.readFileSync(path.join(tokDir, name, "tokenizer_config.json"), "utf8"));
  const template = new Template(config.chat_template);
  const tok = Tokenizer.fromFile(path.join(tokDir, name, "tokenizer.json"));
  const tokenText = (t) => (t && typeof t === "object" ? t.content : t ?? null);
  for (const messages of conversations) {
    const variants = [{ add_generation_prompt: false }, { add_generation_prompt: true }];
    if (name === "qwen3") variants.push({ add_generation_prompt: true, enable_thinking: false });
    for (const v of variants) {
      // The variables transformers' apply_chat_template passes (special tokens by name).
      const text = template.render({
        messages, ...v, bos_token: tokenText(config.bos_token), eos_token: tokenText(config.eos_token),
        pad_token: tokenText(config.pad_token), unk_token: tokenText(config.unk_token),
      });
      const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
      chat.push({ template: name, messages, ...v, text, ids });
    }
  }
}
fs.writeFileSync(path.join(outDir, "chat.json"), JSON.stringify(chat, null, 0).replace(/\},\{"template"/g, "},\n{\"template\"") + "\n");
for (const f of fs.readdirSync(outDir)) console.log(`${path.join(outDir, f)}: ${fs.statSync(path.join(outDir, f)).size} bytes`);

// -------------------------------------------------------------------------- tiny tokenizers

// GPT-2's byte-level alphabet: byte -> character.
const BYTE_CHARS = (() => {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; ++b) bs.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) bs.push(b);
  for (let b = 0xae; b <= 0xff; ++b) bs.push(b);
  const map = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; ++b) map[b] = bs.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  return map;
})();
const byteLevel = (text) => Array.from(Buffer.from(text, "utf8"), (b) => BYTE_CHARS[b]).join("");

function tinyModel({ skipBytes = [], unk = null, fuse = false, ignoreMerges = false, legacy = false }) {
  const vocab = {};
  let id = 0;
  if (unk) vocab[unk] = id++;
  for (let b = 0; b < 256; ++b) if (!skipBytes.includes(b)) vocab[BYTE_CHARS[b]] = id++;
  const merges = [];
  const words = ["the", " the", "ing", " and", "er", " lazy", "ll", "oo", " tokenizer", "é", " café", "日本", "👍", "  ", "\n\n", "ab"];
  for (const w of words) {
    let cur = Array.from(byteLevel(w));
    while (cur.length > 1) {  // merge left to right: (((a b) c) d)
      const [a, b] = [cur[0], cur[1]];
      if (!(a in vocab) || !(b in vocab)) break;
      if (!merges.some(([x, y]) => x === a && y === b)) merges.push([a, b]);
      if (!((a + b) in vocab)) vocab[a + b] = id++;
      cur = [a + b, ...cur.slice(2)];
    }
  }
  merges.push([BYTE_CHARS[0x62], BYTE_CHARS[0x61]]);  // "b a": ties between "ab" and "ba" in "aba", "bab"
  vocab[BYTE_CHARS[0x62] + BYTE_CHARS[0x61]] = id++;
  return { type: "BPE", dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null,
           fuse_unk: fuse, byte_fallback: false, ignore_merges: ignoreMerges, vocab,
           merges: legacy ? merges.map(([a, b]) => `${a} ${b}`) : merges };
}
function added(content, id, flags) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false, ...flags };
}
const TINY = {
  // GPT-2 style: NFC, ByteLevel with its own regex and a prefix space; added-token flags.
  gpt2_flags: (() => {
    const model = tinyModel({});
    const n = Object.keys(model.vocab).length;
    return { version: "1.0", truncation: null, padding: null,
      added_tokens: [added("<|s|>", n, { special: true }), added("<L>", n + 1, { special: true, lstrip: true }),
                     added("<R>", n + 2, { rstrip: true }), added("<LR>", n + 3, { lstrip: true, rstrip: true }),
                     added("word", n + 4, { single_word: true }), added("é", n + 5, { normalized: true }),
                     added("<|s|>x", n + 6, { special: false }), added("Å", n + 7, { normalized: false })],
      normalizer: { type: "NFC" },
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }, model };
  })(),
  // A Split on a string, legacy merges, ignore_merges, a template with a suffix.
  split_template: (() => {
    const model = tinyModel({ ignoreMerges: true, legacy: true });
    const n = Object.keys(model.vocab).length;
    return { version: "1.0", truncation: null, padding: null,
      added_tokens: [added("<bos>", n, { special: true }), added("<eos>", n + 1, { special: true })],
      normalizer: null,
      pre_tokenizer: { type: "Sequence", pretokenizers: [
        { type: "Split", pattern: { String: " " }, behavior: "Isolated", invert: false },
        { type: "Split", pattern: { Regex: "\\p{N}{1,2}|[^\\s\\p{N}]+" }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }] },
      post_processor: { type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<eos>", type_id: 0 } }],
        pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
        special_tokens: { "<bos>": { id: "<bos>", ids: [n], tokens: ["<bos>"] }, "<eos>": { id: "<eos>", ids: [n + 1], tokens: ["<eos>"] } } },
      decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }, model };
  })(),
  // Bytes missing from the vocabulary: unk_token, fused.
  unk_fused: { version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true }] },
    post_processor: null, decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: tinyModel({ skipBytes: [0x41, 0x42, 0xc3, 0xa9, 0xe6], unk: "<unk>", fuse: true }) },
  unk_unfused: { version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: null, decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: tinyModel({ skipBytes: [0x41, 0x42, 0xc3, 0xa9, 0xe6], unk: "<unk>", fuse: false }) },
  no_unk: { version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: null, decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: tinyModel({ skipBytes: [0x41, 0x42, 0xc3, 0xa9, 0xe6] }) },
};

const tinyStrings = [
  "", " ", "the", "the the", " the", "  the  ", "The", "thing", "the lazy tokenizer and the tokenizers", "aba", "bab", "abab",
  "ababa", "baba b", "café", "cafe\u0301", "CAFÉ", "é", "e\u0301", "\u00e9\u0301", "Å", "A\u030a", "\u212b", "AB", "ABBA",
  "A B", "ÉA", "日本語", "日本", "👍👍🏽", "12345 678", "1 2 3", "a1b22c333", "\n\n\n", "a\n\nb", "  two", "tab\tbed",
  "<|s|>", "x<|s|>y", "<|s|>x", "<|s|>xx", " <|s|>x ", "a <L> b", "a   <L>b", "<L>", "  <L>  ", "a<R>   b", "<R>  ",
  "a  <LR>  b", "<LR><LR>", " <LR> <LR> ", "word", " word ", "a word b", "words", "sword", "word.", "(word)", "wordword",
  "word_", "éword", "word2", "word\u0301", "a<L>word<R>b", "<L><R><LR>", "<bos>", "a<eos>b", "<bos><eos>", "the<bos>lazy",
  "ǅ", "ΑΒΓ", "ß", "\u00a0the\u2003the", "\u180ethe", "don't stop", "it's", "'s'S", "x\u0000y", "\ufffd",
];
for (let k = 0; k < 80; ++k) tinyStrings.push(repeat(1 + int(6), () => pick(["the", " ", "  ", "<L>", "<R>", "<LR>", "word",
  "<|s|>", "x", "é", "e\u0301", "A", "B", "ab", "ba", "1", "23", "\n", "\t", "日本", "👍", "café", "<bos>", "<eos>", "ing", ".", "'s"])));

fs.mkdirSync(path.join(outDir, "tiny"), { recursive: true });
const tiny = { strings: [...new Set(tinyStrings)], tokenizers: {} };  // strings go to tiny/strings.jsonl
for (const [name, json] of Object.entries(TINY)) {
  const file = path.join(outDir, "tiny", `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(json) + "\n");
  const tok = Tokenizer.fromFile(file);
  // ids; what addSpecialTokens adds (checked on every string); decodes that differ from the string.
  const r = { prefix: [], suffix: [], decoded: {} };
  const lines = [];
  if (name === "split_template") {  // <bos> text <eos>: the two added tokens, right after the vocabulary
    const n = Object.keys(json.model.vocab).length;
    [r.prefix, r.suffix] = [[n], [n + 1]];
  }
  for (let i = 0; i < tiny.strings.length; ++i) {
    const s = tiny.strings[i];
    const ids = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    const withSpecial = (await tok.encode(s, null, { addSpecialTokens: true })).getIds();
    if (JSON.stringify(withSpecial) !== JSON.stringify([...r.prefix, ...ids, ...r.suffix]))
      throw new Error(`tiny ${name}: addSpecialTokens gives ${JSON.stringify(withSpecial)} for ${JSON.stringify(s)}`);
    lines.push(JSON.stringify(ids));
    const back = await tok.decode(ids, false);
    if (back !== s) r.decoded[i] = back;
  }
  fs.writeFileSync(path.join(outDir, "tiny", `${name}.ids.jsonl`), lines.join("\n") + "\n");
  tiny.tokenizers[name] = r;
}
fs.writeFileSync(path.join(outDir, "tiny", "strings.jsonl"), tiny.strings.map((s) => JSON.stringify(s)).join("\n") + "\n");
delete tiny.strings;
fs.writeFileSync(path.join(outDir, "tiny.json"), JSON.stringify(tiny) + "\n");
for (const f of ["tiny.json", ...fs.readdirSync(path.join(outDir, "tiny")).map((f) => `tiny/${f}`)])
  console.log(`${path.join(outDir, f)}: ${fs.statSync(path.join(outDir, f)).size} bytes`);
