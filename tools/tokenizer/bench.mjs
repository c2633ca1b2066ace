// SPDX-License-Identifier: MIT
// HF tokenizers' side of tools/tokenizer/bench.sh: load and encode times of one text file.
//   node bench.mjs TOKENIZER_JSON TEXT_FILE IDS_OUT [REPEATS]
// IDS_OUT receives the ids as lazyllm-tokenize --ids prints them, for comparison.
import fs from "node:fs";
import tokenizers from "tokenizers";

const [file, textFile, idsOut, repeats = "3"] = process.argv.slice(2);
const text = fs.readFileSync(textFile, "utf8");
let t = process.hrtime.bigint();
const tok = tokenizers.Tokenizer.fromFile(file);
const loadMs = Number(process.hrtime.bigint() - t) / 1e6;
let best = Infinity, ids = [];
for (let r = 0; r < Number(repeats); ++r) {
  t = process.hrtime.bigint();
  ids = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
  best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6);
}
fs.writeFileSync(idsOut, "[" + ids.join(", ") + "]\n");
console.log(`load ${loadMs.toFixed(0)} ms, encode ${best.toFixed(0)} ms (best of ${repeats})`);
