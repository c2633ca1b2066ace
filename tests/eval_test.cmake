# lazyllm-make-task and lazyllm-eval end to end, as a user runs them: the task file is
# deterministic, the evaluator runs every policy on a few short examples with stories260K (which
# cannot answer: the score is ~0) and writes a well-formed table and JSON; usage errors exit 2.
# Variables: MAKE_TASK, EVAL, MODELS, TOK (tok512.bin), WORK, LAZYQA (models/lazyqa; may be absent),
# LAZYQA_NOTES (models/lazyqa-notes; may be absent), LAZYQA_DROPOUT (models/lazyqa-dropout; may be absent).
file(MAKE_DIRECTORY ${WORK})

include(${CMAKE_CURRENT_LIST_DIR}/expect_command.cmake)

# ---------------------------------------------------------------- the generator
expect_command(task-bad-variant 2 "--variant: variant 'x' is not one of" ${MAKE_TASK} --variant x)
expect_command(task-bad-count 2 "--count: '-1' is not an integer" ${MAKE_TASK} --count -1)
expect_command(task-bad-position 2 "--answer-position: '0.5:0.2' is not LO:HI with 0 <= LO < HI <= 1"
               ${MAKE_TASK} --answer-position 0.5:0.2)
expect_command(task-bad-position-form 2 "--answer-position: '0.5' is not LO:HI" ${MAKE_TASK} --answer-position 0.5)
expect_command(task-bad-filler 2 "--filler: '0.99' is not a fraction in \\[0, 0.95\\]" ${MAKE_TASK} --filler 0.99)
expect_command(task-filler 0 "3 examples" ${MAKE_TASK} --seed 1 --count 3 --length 480 --filler 0.5 -o ${WORK}/filler.jsonl)
expect_command(task-far 0 "3 examples" ${MAKE_TASK} --seed 1 --count 3 --length 480 --answer-position 0:0.25 -o ${WORK}/far.jsonl)
expect_command(task-a 0 "3 examples" ${MAKE_TASK} --seed 1 --count 3 --length 480 --variant mixed -z ${TOK} -o ${WORK}/a.jsonl)
expect_command(task-b 0 "3 examples" ${MAKE_TASK} --seed 1 --count 3 --length 480 --variant mixed -z ${TOK} -o ${WORK}/b.jsonl)
expect_command(task-c 0 "3 examples" ${MAKE_TASK} --seed 2 --count 3 --length 480 --variant mixed -z ${TOK} -o ${WORK}/c.jsonl)
file(SHA256 ${WORK}/a.jsonl ha)
file(SHA256 ${WORK}/b.jsonl hb)
file(SHA256 ${WORK}/c.jsonl hc)
if(NOT ha STREQUAL hb OR ha STREQUAL hc)
  message(SEND_ERROR "[task-determinism] same seed: ${ha} vs ${hb}; other seed: ${hc}")
endif()
file(STRINGS ${WORK}/a.jsonl lines)
list(LENGTH lines n_lines)
if(NOT n_lines EQUAL 3)
  message(SEND_ERROR "[task-lines] ${n_lines} lines, expected 3")
endif()
foreach(line IN LISTS lines)
  foreach(key input context length dataset _id)
    string(JSON v ERROR_VARIABLE jerr GET "${line}" ${key})
    if(jerr)
      message(SEND_ERROR "[task-fields] ${key}: ${jerr}")
    endif()
  endforeach()
  string(JSON ans GET "${line}" answers 0)
  string(JSON len GET "${line}" length)
  string(JSON ctx GET "${line}" context)
  string(FIND "${ctx}" "${ans}" at)
  if(at EQUAL -1 OR len GREATER 480)
    message(SEND_ERROR "[task-record] answer '${ans}' not in the context, or length ${len} > 480")
  endif()
endforeach()

# ---------------------------------------------------------------- the evaluator
set(MODEL ${MODELS}/stories260K.bin)
expect_command(eval-no-model 2 "-m MODEL is required" ${EVAL} --data ${WORK}/a.jsonl)
expect_command(eval-device-select-cpu 2 "--device-select applies to the CUDA backend" ${EVAL} -m x --data ${WORK}/a.jsonl
               --backend cpu --device-select)
expect_command(eval-no-device-select-cpu 2 "--no-device-select applies to the CUDA backend" ${EVAL} -m x
               --data ${WORK}/a.jsonl --backend cpu --no-device-select)
expect_command(eval-bad-policy 2 "--policy 'fast' is not one of" ${EVAL} -m x --data ${WORK}/a.jsonl --policy dense,fast)
expect_command(eval-unknown-dataset 2 "dataset 'nosuch' is not known" ${EVAL} -m x --data ${WORK}/a.jsonl --dataset nosuch)
if(NOT EXISTS ${MODEL})
  message(STATUS "SKIPPED evaluator runs: ${MODEL} not found (../shared absent)")
  return()
endif()
expect_command(eval-bad-schedule 2 "--schedule '9:0.5'.*not below the model's 5 layers"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl --policy lazy --schedule 9:0.5)
expect_command(eval-no-cuda-or-gpu 1 "(no CUDA backend|no CUDA GPU|CUDA)" ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl
           --backend cuda --policy dense)
expect_command(eval-run 0 "\\| policy \\| schedule \\| score \\| EM \\| starts right \\| TTFT ms \\| token-layers % \\| speedup \\|"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl --policy dense,lazy,static,random
           --schedule default --schedule aggressive --schedule 1:0.5 --backend cpu --max-new 8
           -o ${WORK}/table.md --json ${WORK}/eval.json)
# The window baseline and Lazy with --keep-recent (reported apart, as lazy+recentN).
expect_command(eval-window-recent 0 "\\| window \\| 1:0.5 \\|.*\\| lazy\\+recent4 \\| 1:0.5 \\|"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl --policy window,lazy --keep-recent 4
           --schedule 1:0.5 --backend cpu --max-new 4)
expect_command(eval-bad-keep-recent 2 "--keep-recent" ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl
           --keep-recent -1)
# Tables: the summary (a header, a separator and 1 + 3 x 3 rows), then the same rows by the answer
# document's position (the generator's records carry answer_doc and n_docs).
file(STRINGS ${WORK}/table.md rows REGEX "^\\| (dense|lazy|static|random) \\|")
list(LENGTH rows n_rows)
if(NOT n_rows EQUAL 20)
  message(SEND_ERROR "[eval-table] ${n_rows} policy rows, expected 10 + 10")
endif()
file(READ ${WORK}/table.md table_text)
if(NOT table_text MATCHES "Score by where the answer document is.*\\| policy \\| schedule \\| 1/5 \\([0-9]+\\) \\|")
  message(SEND_ERROR "[eval-position-table] missing:\n${table_text}")
endif()
file(READ ${WORK}/eval.json js)
string(JSON n_runs LENGTH "${js}" runs)
string(JSON n_ex GET "${js}" n_examples)
if(NOT n_runs EQUAL 10 OR NOT n_ex EQUAL 3)
  message(SEND_ERROR "[eval-json] ${n_runs} runs (expected 10), ${n_ex} examples (expected 3)")
endif()
math(EXPR last "${n_runs} - 1")
foreach(r RANGE ${last})
  string(JSON policy GET "${js}" runs ${r} policy)
  string(JSON score GET "${js}" runs ${r} score)
  string(JSON ttft GET "${js}" runs ${r} ttft_ms)
  string(JSON frac GET "${js}" runs ${r} token_layers_fraction)
  string(JSON speed GET "${js}" runs ${r} ttft_speedup)
  string(JSON n_per LENGTH "${js}" runs ${r} examples)
  string(JSON pred GET "${js}" runs ${r} examples 0 prediction)
  string(JSON ex_score GET "${js}" runs ${r} examples 0 score)
  if(score LESS 0 OR score GREATER 100 OR NOT ttft GREATER 0 OR NOT n_per EQUAL 3 OR NOT speed GREATER 0
     OR ex_score LESS 0 OR ex_score GREATER 1)
    message(SEND_ERROR "[eval-json-run-${r}] policy=${policy} score=${score} ttft=${ttft} speedup=${speed} examples=${n_per}")
  endif()
  if(policy STREQUAL "dense" AND (NOT frac EQUAL 1 OR NOT speed EQUAL 1))
    message(SEND_ERROR "[eval-json-dense] token-layer fraction ${frac}, speedup ${speed} (expected 1 and 1)")
  elseif(NOT policy STREQUAL "dense" AND NOT frac LESS 1)
    message(SEND_ERROR "[eval-json-${policy}] token-layer fraction ${frac} is not below 1")
  endif()
endforeach()
message(STATUS "[eval-json] ok (${n_runs} runs)")
# By answer position: five fifths whose counts add up to the examples.
string(JSON n_buckets LENGTH "${js}" runs 0 by_answer_position)
set(n_sum 0)
foreach(b RANGE 4)
  string(JSON nb GET "${js}" runs 0 by_answer_position ${b} n)
  math(EXPR n_sum "${n_sum} + ${nb}")
endforeach()
string(JSON adoc GET "${js}" examples 0 answer_doc)
string(JSON ndocs GET "${js}" examples 0 n_docs)
if(NOT n_buckets EQUAL 5 OR NOT n_sum EQUAL 3 OR adoc LESS 0 OR NOT adoc LESS ndocs)
  message(SEND_ERROR "[eval-json-position] ${n_buckets} buckets, ${n_sum} examples in them, answer_doc ${adoc} of ${ndocs}")
endif()
# A record without answer_doc/n_docs (a real LongBench line): no position table.
file(STRINGS ${WORK}/a.jsonl a_lines)
list(GET a_lines 0 first)
string(REGEX REPLACE ",\"n_docs\":[0-9]+,\"answer_doc\":[0-9]+,\"subject_doc\":[0-9]+" "" first "${first}")
if(first MATCHES "n_docs|answer_doc")
  message(SEND_ERROR "[eval-no-positions] could not strip the position fields: ${first}")
endif()
file(WRITE ${WORK}/nopos.jsonl "${first}\n")
expect_command(eval-no-positions 0 "\\| dense \\| - \\|" ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/nopos.jsonl
               --policy dense --max-new 4 --backend cpu)
if(LAST_STDOUT MATCHES "Score by where")
  message(SEND_ERROR "[eval-no-positions] a position table without positions:\n${LAST_STDOUT}")
endif()
file(WRITE ${WORK}/badpos.jsonl "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"dataset\": \"lazyllm_mdqa\", \"n_docs\": 3, \"answer_doc\": 3}\n")
expect_command(eval-bad-position 1 "badpos.jsonl:1: \"answer_doc\" 3 is not a document of 3" ${EVAL} -m ${MODEL} -z ${TOK}
               --data ${WORK}/badpos.jsonl --policy dense --backend cpu)
# Numbers are range-checked before they are narrowed (2^40 was read as document 0).
file(WRITE ${WORK}/bigpos.jsonl "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"dataset\": \"lazyllm_mdqa\", \"n_docs\": 3, \"answer_doc\": 1099511627776}\n")
expect_command(eval-big-position 1 "bigpos.jsonl:1: \"answer_doc\" 1099511627776 is out of range \\(0..2147483647\\)"
               ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/bigpos.jsonl --policy dense --backend cpu)

# A code-completion dataset (LongBench lcc format) is scored with code similarity.
file(WRITE ${WORK}/lcc.jsonl "{\"input\": \"\", \"context\": \"def f(x):\\n\", \"answers\": [\"    return x\"], \"dataset\": \"lcc\", \"_id\": \"c1\"}\n")
expect_command(eval-lcc 0 "lcc \\(1\\)" ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/lcc.jsonl --policy dense --max-new 8
               --backend cpu --json ${WORK}/lcc.json)
file(READ ${WORK}/lcc.json js)
string(JSON metric GET "${js}" examples 0 metric)
string(JSON lcc_score GET "${js}" runs 0 score)
if(NOT metric STREQUAL "code_sim" OR lcc_score LESS 0 OR lcc_score GREATER 100)
  message(SEND_ERROR "[eval-lcc] metric ${metric}, score ${lcc_score}")
endif()

# Prompts longer than the context: the middle is cut out (LongBench's way) and it is said.
expect_command(eval-truncate 0 "3 of 3 prompts are longer than the context allows.*middle was cut out"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl --policy dense -c 128 --max-new 4 --backend cpu
           --json ${WORK}/trunc.json)
file(READ ${WORK}/trunc.json js)
string(JSON n_tokens GET "${js}" runs 0 examples 0 prompt_tokens)
string(JSON trunc GET "${js}" examples 0 truncated)
if(NOT n_tokens EQUAL 124 OR NOT trunc)
  message(SEND_ERROR "[eval-truncate] prompt tokens ${n_tokens} (expected 128 - 4 = 124), truncated=${trunc}")
endif()

# ---------------------------------------------------------------- the shipped model (when present)
if(LAZYQA AND EXISTS ${LAZYQA}/config.json)
  file(WRITE ${WORK}/fixed.jsonl "{\"input\": \"What is Mara Keller's favourite colour?\", \"context\": \"Document 1: Ivo Brandt\\nIvo Brandt lives in Oslo. Ivo Brandt works as a baker. Ivo Brandt's favourite colour is red. Ivo Brandt was born in 1950. Ivo Brandt's pet is a dog. Ivo Brandt's friend is Lena Novak.\\n\\nDocument 2: Mara Keller\\nMara Keller lives in Lisbon. Mara Keller works as a pilot. Mara Keller's favourite colour is green. Mara Keller was born in 1971. Mara Keller's pet is a parrot. Mara Keller's friend is Ivo Brandt.\\n\\n\", \"answers\": [\"green\"], \"length\": 0, \"dataset\": \"lazyllm_mdqa\", \"_id\": \"fixed-1\"}\n")
  expect_command(lazyqa-dense 0 "\\| dense \\| - \\| 100.00 \\| 100.00 \\|"
             ${EVAL} -m ${LAZYQA} --data ${WORK}/fixed.jsonl --policy dense --backend cpu --json ${WORK}/lazyqa.json)
endif()

# A lazyllm-eval JSON whose runs are dense, lazy, random at one schedule: LazyLLM's exact match must
# be at least LAZY_MIN at <= 50 % of the token-layers, RandomDrop's below RANDOM_BELOW.
function(check_lazy_beats_random tag json lazy_min random_below)
  file(READ ${json} js)
  string(JSON lazy_em GET "${js}" runs 1 em)
  string(JSON random_em GET "${js}" runs 2 em)
  string(JSON lazy_frac GET "${js}" runs 1 token_layers_fraction)
  if(lazy_em LESS lazy_min OR NOT random_em LESS random_below OR lazy_frac GREATER 0.5)
    message(SEND_ERROR "[${tag}] LazyLLM EM ${lazy_em} (expected >= ${lazy_min}) at ${lazy_frac} of the token-layers "
                       "(expected <= 0.5), RandomDrop EM ${random_em} (expected < ${random_below})")
  else()
    message(STATUS "[${tag}] ok: LazyLLM EM ${lazy_em}, RandomDrop EM ${random_em} at ${lazy_frac} of the token-layers")
  endif()
endfunction()

# The model trained with notes (models/MODEL_CARD.md, "Run 10"): 10 held-out questions at 512 tokens
# whose contexts are ~70 % notes. Dense answers all of them; LazyLLM at 49.9 % of the token-layers
# answered 9 of 10 when this test was written (2026-11-28), RandomDrop at the same compute 0. The
# bounds leave room for a last-bit change in the kernels, not for scores that stop choosing.
if(LAZYQA_NOTES AND EXISTS ${LAZYQA_NOTES}/config.json)
  expect_command(notes-task 0 "10 examples" ${MAKE_TASK} --seed 9105120 --count 10 --length 512 --filler 0.7
                 -z ${LAZYQA_NOTES}/tokenizer.bin -o ${WORK}/notes.jsonl)
  expect_command(notes-eval 0 "\\| dense \\| - \\| 100.00 \\| 100.00 \\|" ${EVAL} -m ${LAZYQA_NOTES} --data ${WORK}/notes.jsonl
                 --policy dense,lazy,random --schedule 2:0.35,3:0.7,4:0.5,5:0.5 --backend cpu --json ${WORK}/notes.json)
  check_lazy_beats_random(notes-eval ${WORK}/notes.json 80 40)
endif()

# The model trained with notes and random token dropout (models/MODEL_CARD.md, "Run 13"): 20
# held-out questions at 512 tokens with ~70 % notes, at the schedule chosen for it on validation
# seeds (49.2 % of the token-layers). When this test was written (2026-11-29) dense and LazyLLM
# answered all 20 and RandomDrop at the same compute 13. The bounds allow one lost question to a
# last-bit change in the kernels, not scores that stop choosing (swapping the policies fails it).
if(LAZYQA_DROPOUT AND EXISTS ${LAZYQA_DROPOUT}/config.json)
  expect_command(dropout-task 0 "20 examples" ${MAKE_TASK} --seed 9105120 --count 20 --length 512 --filler 0.7
                 -z ${LAZYQA_DROPOUT}/tokenizer.bin -o ${WORK}/dropout.jsonl)
  expect_command(dropout-eval 0 "\\| dense \\| - \\| 100.00 \\| 100.00 \\|" ${EVAL} -m ${LAZYQA_DROPOUT}
                 --data ${WORK}/dropout.jsonl --policy dense,lazy,random --schedule 2:0.25,3:0.85,4:0.5,5:0.5
                 --backend cpu --json ${WORK}/dropout.json)
  check_lazy_beats_random(dropout-eval ${WORK}/dropout.json 95 85)
endif()

# ---------------------------------------------------------------- issue 31: the evaluator as a new user finds it
# -r: TTFT timed N times, shown as mean ± sd; --png draws the score-vs-speedup plot itself;
# --progress shows the running score and what is left.
expect_command(eval-repeat-png 0 "\\| dense \\| - \\| [0-9.]+ \\| [0-9.]+ \\| [0-9.]+ \\| [0-9.]+ ± [0-9.]+ \\|"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl --policy dense,lazy --schedule 1:0.5 --backend cpu
           --max-new 4 -r 2 --progress --label "test" --png ${WORK}/plot.png --json ${WORK}/rep.json)
if(NOT LAST_STDERR MATCHES "\\[dense\\] 1/3, score so far [0-9.]+, [0-9]+s left")
  message(SEND_ERROR "[eval-progress] no running score / ETA:\n${LAST_STDERR}")
endif()
file(READ ${WORK}/rep.json js)
string(JSON n_reps LENGTH "${js}" runs 0 ttft_ms_reps)
if(NOT n_reps EQUAL 2 OR NOT EXISTS ${WORK}/plot.png)
  message(SEND_ERROR "[eval-repeat-png] ${n_reps} TTFT repetitions (want 2), plot.png exists: ${WORK}/plot.png")
endif()
file(READ ${WORK}/plot.png png_head LIMIT 8 HEX)
if(NOT png_head STREQUAL "89504e470d0a1a0a")
  message(SEND_ERROR "[eval-png] ${WORK}/plot.png is not a PNG (${png_head})")
endif()
expect_command(eval-replot 0 "wrote .*replot.png" ${EVAL} --plot ${WORK}/rep.json,${WORK}/rep.json --plot-x fraction
               --png ${WORK}/replot.png)
# A file mixing datasets: one table per dataset (their metrics differ), never one mean across them.
file(STRINGS ${WORK}/a.jsonl a_all)
list(GET a_all 0 l0)
string(REGEX REPLACE "\"dataset\":\"[^\"]*\"" "\"dataset\":\"hotpotqa\"" l_hot "${l0}")
file(WRITE ${WORK}/mixed.jsonl "${l0}\n${l_hot}\n${first}\n")
file(APPEND ${WORK}/mixed.jsonl "{\"input\": \"\", \"context\": \"def f(x):\\n\", \"answers\": [\"    return x\"], \"dataset\": \"lcc\"}\n")
expect_command(eval-per-dataset 0 "Dataset hotpotqa \\(qa_f1, 1 example\\):.*Dataset lazyllm_mdqa[_a-z]* \\(qa_f1, 2 examples\\):.*Dataset lcc \\(code_sim, 1 example\\):"
           ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/mixed.jsonl --policy dense --backend cpu --max-new 4)
# An unknown dataset name says how to score the file anyway.
file(WRITE ${WORK}/unknown.jsonl "{\"input\": \"q\", \"context\": \"c\", \"answers\": [\"a\"], \"dataset\": \"mytask\"}\n")
expect_command(eval-unknown-dataset 2 "dataset 'mytask' is not known.*give --dataset NAME" ${EVAL} -m ${MODEL} -z ${TOK}
           --data ${WORK}/unknown.jsonl)
# Numbers are range-checked (a seed above 2^64 - 1, -r 0).
expect_command(eval-bad-seed 2 "--seed: '18446744073709551616' is not an integer" ${EVAL} -m ${MODEL} -z ${TOK}
           --data ${WORK}/a.jsonl --seed 18446744073709551616)
expect_command(eval-bad-reps 2 "-r: '0' is not an integer in 1\\.\\.1000" ${EVAL} -m ${MODEL} -z ${TOK} --data ${WORK}/a.jsonl -r 0)
expect_command(task-one-example 0 "lazyllm-make-task: 1 example, " ${MAKE_TASK} --seed 1 --count 1 --length 200 -o ${WORK}/one.jsonl)
expect_command(task-bad-seed 2 "--seed: '18446744073709551616' is not an integer" ${MAKE_TASK} --seed 18446744073709551616)
