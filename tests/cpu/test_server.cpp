// lazyllm-server's core without HTTP: the request parser (each refusal with its status and
// parameter), make_job's limits, TextStream's stop strings and UTF-8 hold-back, and the
// scheduler over Engine<CpuBackend> (concurrent jobs each equal to the job alone, chunked
// prefill, preemption on OutOfBlocks replaying the same tokens, cancellation freeing blocks
// before the next step, a full queue and a job larger than the pool refused).
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/common/model_files.hpp"
#include "../../examples/server/api.hpp"
#include "../../examples/server/scheduler.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"
#include "test_util.hpp"

using lazyllm::test::prompt_of;

using namespace lazyllm;
using namespace lazyllm::server;

namespace {

/// The status and parameter of the ApiError `body` gets (0 when it parses).
std::pair<int, std::string> refusal(const std::string& body, Endpoint ep = Endpoint::Completions) {
  try {
    parse_request(body, ep);
  } catch (const ApiError& e) {
    return {e.status(), e.param()};
  }
  return {0, ""};
}

/// A tokenizer whose token i is the string pieces[i] (for TextStream).
struct PieceTokenizer {
  std::vector<std::string> pieces;
  std::vector<std::int32_t> encode(std::string_view, bool) const { return {}; }
  std::string decode(std::int32_t, std::int32_t id) const { return pieces.at(std::size_t(id)); }
  std::string decode(std::span<const std::int32_t> ids) const {
    std::string s;
    for (auto i : ids) s += pieces.at(std::size_t(i));
    return s;
  }
  std::int32_t vocab_size() const { return std::int32_t(pieces.size()); }
  std::int32_t bos_id() const { return 1; }
  std::int32_t eos_id() const { return 2; }
};

JobSpec spec_of(std::vector<std::int32_t> prompt, int max_tokens, policy::AnyPolicy pol, float temperature = 0,
                std::uint64_t seed = 0) {
  JobSpec s;
  s.prompt = std::move(prompt);
  s.max_tokens = max_tokens;
  s.policy = std::move(pol);
  s.ignore_eos = true;  // a random model says EOS at random: run every job to its length
  s.sampling.temperature = temperature;
  s.sampling.top_k = temperature > 0 ? 20 : 0;
  s.sampling.seed = seed;
  return s;
}

/// small_config() with room for long generations: jobs that run for hundreds of steps, so that
/// what a test does while they run (submit, cancel) happens while they run on any machine.
ModelWeights long_model() {
  RuntimeConfig c = test::small_config();
  c.max_seq_len = 1024;
  return test::random_model(c, 8, 0.3f);
}

/// Waits (at most 60 s) until every job has finished.
void wait_all(const std::vector<std::shared_ptr<Job>>& jobs) {
  const auto until = Clock::now() + std::chrono::seconds(60);
  for (const auto& j : jobs)
    while (j->finish_reason() == Finish::None) {
      REQUIRE(Clock::now() < until);
      j->wait(-1, 50);
    }
}

std::vector<std::int32_t> tokens_of(const Job& j) {
  std::vector<std::int32_t> t;
  j.read(0, t);
  return t;
}

std::vector<JobSpec> mixed_specs(int vocab) {
  std::vector<JobSpec> v;
  const char* schedules[] = {"none", "1:0.5,3:0.5", "2:0.3", "1:0.3,2:0.5,3:0.5"};
  for (int i = 0; i < 8; ++i) {
    const Schedule s = Schedule::parse(schedules[i % 4]);
    v.push_back(spec_of(prompt_of(20 + 7 * i, unsigned(i + 1), vocab), 6 + i % 5,
                        s.empty() ? policy::AnyPolicy(policy::Dense{}) : policy::AnyPolicy(policy::Lazy(s)),
                        i % 3 == 2 ? 0.8f : 0.0f, 100 + unsigned(i)));
  }
  return v;
}

/// Each spec alone through a scheduler of its own (one job at a time).
std::vector<std::vector<std::int32_t>> alone(std::shared_ptr<const CpuModel> model, const std::vector<JobSpec>& specs,
                                             SchedulerOptions o = {}) {
  std::vector<std::vector<std::int32_t>> out;
  o.parallel = 1;
  Scheduler<CpuBackend> s(model, o);
  for (const auto& sp : specs) {
    auto j = std::make_shared<Job>(sp);
    REQUIRE(s.submit(j).status == Admission::Queued);
    wait_all({j});
    CHECK(j->finish_reason() == Finish::Length);
    out.push_back(tokens_of(*j));
  }
  return out;
}

}  // namespace

TEST_CASE("server api: valid requests parse into what the engine needs") {
  auto r = parse_request(R"({"model":"m","prompt":"hi","max_tokens":5,"temperature":0.7,"top_p":0.9,"top_k":40,
    "min_p":0.05,"seed":-3,"stop":["\n","x"],"n":1,"stream":true,"stream_options":{"include_usage":true},
    "frequency_penalty":0,"presence_penalty":0.0,"logit_bias":{},"user":"u","echo":false,"best_of":1,"logprobs":null,
    "lazyllm":{"schedule":"3:0.3","ignore_eos":true}})",
                         Endpoint::Completions);
  CHECK(r.model == "m");
  CHECK(r.prompt_text == std::optional<std::string>("hi"));
  CHECK(r.max_tokens == std::optional<int>(5));
  CHECK(r.sampling.temperature == doctest::Approx(0.7));
  CHECK(r.sampling.top_k == 40);
  CHECK(r.sampling.min_p == doctest::Approx(0.05));
  CHECK(r.sampling.seed == std::uint64_t(std::int64_t(-3)));
  CHECK(r.stop == std::vector<std::string>{"\n", "x"});
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.schedule == std::optional<std::string>("3:0.3"));
  CHECK(r.ignore_eos);

  r = parse_request(R"({"prompt":[[1, 5, 7]], "top_k": -1})", Endpoint::Completions);
  CHECK(r.prompt_ids == std::vector<std::int64_t>{1, 5, 7});
  CHECK(r.sampling.top_k == 0);
  r = parse_request(R"({"prompt":["one string"]})", Endpoint::Completions);
  CHECK(r.prompt_text == std::optional<std::string>("one string"));

  r = parse_request(R"({"messages":[{"role":"developer","content":"ctx"},
    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
    "max_completion_tokens":9,"response_format":{"type":"text"},"tools":[],"tool_choice":"none"})",
                    Endpoint::ChatCompletions);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[1].content == "ab");
  CHECK(r.max_tokens == std::optional<int>(9));
}

TEST_CASE("server api: each bad request is refused with its status and parameter") {
  using P = std::pair<int, std::string>;
  CHECK(refusal("{").first == 400);  // malformed JSON
  CHECK(refusal("").first == 400);
  CHECK(refusal("[1]").first == 400);  // not an object
  CHECK(refusal(R"({"prompt":"x",})").first == 400);
  CHECK(refusal(std::string(100, '[') + std::string(100, ']')).first == 400);  // too deep
  CHECK(refusal(R"({})") == P{400, "prompt"});                                 // missing
  CHECK(refusal(R"({"prompt":5})") == P{400, "prompt"});                       // wrong types
  CHECK(refusal(R"({"prompt":"x","max_tokens":"5"})") == P{400, "max_tokens"});
  CHECK(refusal(R"({"prompt":"x","max_tokens":2.5})") == P{400, "max_tokens"});
  CHECK(refusal(R"({"prompt":"x","max_tokens":0})") == P{400, "max_tokens"});
  CHECK(refusal(R"({"prompt":"x","max_tokens":99999999999})") == P{400, "max_tokens"});
  CHECK(refusal(R"({"prompt":"x","temperature":"hot"})") == P{400, "temperature"});
  CHECK(refusal(R"({"prompt":"x","temperature":3})") == P{400, "temperature"});
  CHECK(refusal(R"({"prompt":"x","top_p":0})") == P{400, "top_p"});
  CHECK(refusal(R"({"prompt":"x","min_p":1.5})") == P{400, "min_p"});
  CHECK(refusal(R"({"prompt":"x","seed":18446744073709551615})") == P{400, "seed"});
  CHECK(refusal(R"({"prompt":"x","stream":1})") == P{400, "stream"});
  CHECK(refusal(R"({"prompt":"x","stop":["a",""]})") == P{400, "stop"});
  CHECK(refusal(R"({"prompt":"x","stop":["a","b","c","d","e"]})") == P{400, "stop"});
  CHECK(refusal(R"({"prompt":"x","stop":[1]})") == P{400, "stop[0]"});
  CHECK(refusal(R"({"prompt":[1,-2]})") == P{400, "prompt[1]"});
  CHECK(refusal(R"({"prompt":[]})") == P{400, "prompt"});
  CHECK(refusal(R"({"prompt":["a","b"]})") == P{400, "prompt"});  // a batch: one prompt per request
  // Unknown and unsupported fields are refused, never ignored.
  CHECK(refusal(R"({"prompt":"x","temprature":0.5})") == P{400, "temprature"});
  CHECK(refusal(R"({"prompt":"x","repetition_penalty":1.1})") == P{400, "repetition_penalty"});
  CHECK(refusal(R"({"prompt":"x","n":2})") == P{400, "n"});
  CHECK(refusal(R"({"prompt":"x","echo":true})") == P{400, "echo"});
  CHECK(refusal(R"({"prompt":"x","best_of":2})") == P{400, "best_of"});
  CHECK(refusal(R"({"prompt":"x","logprobs":1})") == P{400, "logprobs"});
  CHECK(refusal(R"({"prompt":"x","frequency_penalty":0.5})") == P{400, "frequency_penalty"});
  CHECK(refusal(R"({"prompt":"x","logit_bias":{"5":1}})") == P{400, "logit_bias"});
  CHECK(refusal(R"({"prompt":"x","stream_options":{"include_usage":true}})") == P{400, "stream_options"});
  CHECK(refusal(R"({"prompt":"x","stream":true,"stream_options":{"x":1}})") == P{400, "stream_options.x"});
  CHECK(refusal(R"({"prompt":"x","lazyllm":{"shedule":"1:0.5"}})") == P{400, "lazyllm.shedule"});
  CHECK(refusal(R"({"prompt":"x","lazyllm":"1:0.5"})") == P{400, "lazyllm"});
  CHECK(refusal(R"({"prompt":"x","messages":[]})") == P{400, "messages"});  // the other endpoint's field
  const auto chat = Endpoint::ChatCompletions;
  CHECK(refusal(R"({"prompt":"x"})", chat) == P{400, "prompt"});
  CHECK(refusal(R"({"messages":{}})", chat) == P{400, "messages"});
  CHECK(refusal(R"({"messages":[{"role":"user"}]})", chat) == P{400, "messages[0].content"});
  CHECK(refusal(R"({"messages":[{"role":"tool","content":"x"}]})", chat) == P{400, "messages[0].role"});
  CHECK(refusal(R"({"messages":[{"role":"user","content":"x","name":"bob"}]})", chat) == P{400, "messages[0].name"});
  CHECK(refusal(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", chat) ==
        P{400, "messages[0].content[0].type"});
  CHECK(refusal(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", chat) ==
        P{400, "tools"});
  CHECK(refusal(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", chat) == P{400, "logprobs"});
  CHECK(
      refusal(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":3,"max_completion_tokens":4})", chat).first ==
      400);
}

TEST_CASE("server api: make_job checks the context, the vocabulary and the schedule") {
  RuntimeConfig c = test::small_config();  // 4 layers, vocab 64
  JobContext ctx;
  ctx.config = &c;
  ctx.n_ctx = 10;
  auto job = [&](const std::string& body) { return make_job(parse_request(body, Endpoint::Completions), ctx); };
  auto status = [&](const std::string& body) {
    try {
      job(body);
    } catch (const ApiError& e) {
      return e.status();
    }
    return 0;
  };
  const JobSpec s = job(R"({"prompt":[1,2,3]})");
  CHECK(s.prompt == std::vector<std::int32_t>{1, 2, 3});
  CHECK(s.max_tokens == 7);  // OpenAI's default 16, cut to the context
  CHECK(s.policy.name() == std::string_view("dense"));
  CHECK(job(R"({"prompt":[1,2,3],"max_tokens":7,"lazyllm":{"schedule":"1:0.5,3:0.5"}})").policy.schedule() ==
        Schedule::parse("1:0.5,3:0.5"));
  ctx.default_schedule = "2:0.3";
  CHECK(job(R"({"prompt":[1]})").policy.schedule() == Schedule::parse("2:0.3"));
  CHECK(job(R"({"prompt":[1],"lazyllm":{"schedule":"none"}})").policy.name() == std::string_view("dense"));
  CHECK(status(R"({"prompt":[1,2,3],"max_tokens":8})") == 400);              // beyond the context
  CHECK(status(R"({"prompt":[1,2,3,4,5,6,7,8,9,10]})") == 400);              // the prompt fills the context
  CHECK(status(R"({"prompt":[64]})") == 400);                                // outside the vocabulary
  CHECK(status(R"({"prompt":"text"})") == 400);                              // no tokenizer
  CHECK(status(R"({"prompt":[1],"lazyllm":{"schedule":"4:0.5"}})") == 400);  // layer 4 of 4
  CHECK(status(R"({"prompt":[1],"lazyllm":{"schedule":"bogus"}})") == 400);
}

TEST_CASE("server api: TextStream cuts at stop strings across tokens and holds back partial UTF-8") {
  const Tokenizer tok(PieceTokenizer{{"<unk>", "<s>", "</s>", "Hel", "lo", " wor", "ld", "\n", "\xC3", "\xA9", "END"}});
  {
    TextStream ts(&tok, 1, {"o wo"});
    CHECK(ts.add(3) == "Hel");
    CHECK(ts.add(4) == "l");  // "o" may start the stop string
    CHECK(ts.add(5).empty());
    CHECK(ts.stopped());
    CHECK(ts.text() == "Hell");
    CHECK(ts.tokens() == 3);
    CHECK(ts.add(6).empty());
  }
  {
    TextStream ts(&tok, 1, {"xyz"});
    CHECK(ts.add(3) == "Hel");
    CHECK(ts.add(8).empty());  // the first byte of a 2-byte character
    CHECK(ts.add(9) == "\xC3\xA9");
    CHECK(ts.add(10) == "END");
    CHECK(!ts.stopped());
    CHECK(ts.flush().empty());
  }
  {
    TextStream ts(&tok, 1, {"ld\n"});
    CHECK(ts.add(6).empty());    // "ld" may start it
    CHECK(ts.add(3) == "ldHe");  // so may "l"
    CHECK(ts.add(6) == "l");
    CHECK(ts.add(7).empty());
    CHECK(ts.stopped());
    CHECK(ts.text() == "ldHel");
  }
}

TEST_CASE("server scheduler: concurrent jobs with mixed schedules each get what they get alone") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const auto specs = mixed_specs(w.config.vocab_size);
  const auto ref = alone(model, specs);
  for (const int chunk : {0, 7}) {
    CAPTURE(chunk);
    SchedulerOptions o;
    o.parallel = 5;
    o.prefill_chunk = chunk;
    o.step_tokens = 64;  // prompts wait for room in a step: joins at varying steps
    const auto ref_chunked = chunk ? alone(model, specs, o) : ref;
    Scheduler<CpuBackend> s(model, o);
    std::vector<std::shared_ptr<Job>> jobs;
    for (const auto& sp : specs) {
      jobs.push_back(std::make_shared<Job>(sp));
      REQUIRE(s.submit(jobs.back()).status == Admission::Queued);
    }
    wait_all(jobs);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      CAPTURE(i);
      CHECK(jobs[i]->finish_reason() == Finish::Length);
      CHECK(tokens_of(*jobs[i]) == ref_chunked[i]);
      CHECK(int(tokens_of(*jobs[i]).size()) == specs[i].max_tokens);
    }
    const Metrics m = s.metrics();
    CHECK(m.pool_blocks_used == 0);
    CHECK(m.requests_finished == std::int64_t(specs.size()));
    CHECK(m.running == 0);
    CHECK(m.token_layers < m.dense_token_layers);  // the lazy jobs pruned
  }
}

TEST_CASE("server scheduler: OutOfBlocks preempts the newest job, which replays to the same tokens") {
  const auto w = long_model();
  auto model = std::make_shared<const CpuModel>(w);
  // Short prompts that grow to 307 tokens (308 blocks of 4 tokens over 4 layers, plus Aux for the
  // lazy one): each fits the pool of 400 blocks alone, admission lets a second one in while the
  // first runs, and two cannot both reach their length.
  std::vector<JobSpec> specs;
  for (int i = 0; i < 3; ++i)
    specs.push_back(
        spec_of(prompt_of(8, unsigned(10 + i), 64), 300,
                i == 1 ? policy::AnyPolicy(policy::Lazy(Schedule::parse("1:0.5"))) : policy::AnyPolicy(policy::Dense{}),
                i == 2 ? 0.9f : 0.0f, 7));
  SchedulerOptions o;
  o.block_tokens = 4;
  o.pool_blocks = 400;
  o.parallel = 3;
  const auto ref = alone(model, specs, o);
  Scheduler<CpuBackend> s(model, o);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& sp : specs) {
    jobs.push_back(std::make_shared<Job>(sp));
    REQUIRE(s.submit(jobs.back()).status == Admission::Queued);
  }
  wait_all(jobs);
  int preempted = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    CAPTURE(i);
    CHECK(jobs[i]->finish_reason() == Finish::Length);
    CHECK(tokens_of(*jobs[i]) == ref[i]);
    preempted += jobs[i]->stats().preemptions;
  }
  const Metrics m = s.metrics();
  CHECK(m.preemptions > 0);
  CHECK(preempted == m.preemptions);
  CHECK(m.requests_failed == 0);
  CHECK(m.pool_blocks_used == 0);
  CHECK(m.pool_blocks_peak <= 400);
}

TEST_CASE("server scheduler: a cancelled job leaves before the next step and gives its blocks back") {
  const auto w = long_model();
  auto model = std::make_shared<const CpuModel>(w);
  SchedulerOptions o;
  o.block_tokens = 4;
  Scheduler<CpuBackend> s(model, o);
  auto keep = std::make_shared<Job>(spec_of(prompt_of(30, 3, 64), 400, policy::Dense{}));
  auto drop = std::make_shared<Job>(spec_of(prompt_of(30, 4, 64), 900, policy::Lazy(Schedule::parse("1:0.5"))));
  REQUIRE(s.submit(keep).status == Admission::Queued);
  REQUIRE(s.submit(drop).status == Admission::Queued);
  std::vector<std::int32_t> seen;
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (seen.size() < 3 && Clock::now() < until) {
    drop->wait(-1, 50);
    drop->read(seen.size(), seen);
  }
  REQUIRE(seen.size() >= 3);
  s.cancel(drop);
  wait_all({drop});
  CHECK(drop->finish_reason() == Finish::Cancelled);
  CHECK(tokens_of(*drop).size() < 900);
  CHECK(s.metrics().cancel_delay_steps_max <= 1);
  wait_all({keep});
  CHECK(keep->finish_reason() == Finish::Length);
  const Metrics m = s.metrics();
  CHECK(m.requests_cancelled == 1);
  CHECK(m.pool_blocks_used == 0);
  // A job cancelled while it waits never runs.
  SchedulerOptions one = o;
  one.parallel = 1;
  Scheduler<CpuBackend> s1(model, one);
  auto first = std::make_shared<Job>(spec_of(prompt_of(30, 5, 64), 300, policy::Dense{}));
  auto waiting = std::make_shared<Job>(spec_of(prompt_of(30, 6, 64), 300, policy::Dense{}));
  REQUIRE(s1.submit(first).status == Admission::Queued);
  REQUIRE(s1.submit(waiting).status == Admission::Queued);
  s1.cancel(waiting);
  wait_all({first, waiting});
  CHECK(waiting->finish_reason() == Finish::Cancelled);
  CHECK(tokens_of(*waiting).empty());
  CHECK(first->finish_reason() == Finish::Length);
}

TEST_CASE("server scheduler: a full queue and a job larger than the pool are refused at submit") {
  const auto w = long_model();
  auto model = std::make_shared<const CpuModel>(w);
  SchedulerOptions o;
  o.parallel = 1;
  o.max_queue = 1;
  o.block_tokens = 4;
  o.pool_blocks = 1000;
  Scheduler<CpuBackend> s(model, o);
  auto big = std::make_shared<Job>(spec_of(prompt_of(40, 1, 64), 960, policy::Dense{}));  // 1000 tokens: 1000 blocks
  CHECK(s.blocks_needed(big->spec) == 1000);
  CHECK(s.submit(big).status == Admission::Queued);
  s.cancel(big);
  auto bigger = std::make_shared<Job>(spec_of(prompt_of(40, 1, 64), 961, policy::Dense{}));  // 1001 tokens: 1004 blocks
  const Admission a = s.submit(bigger);
  CHECK(a.status == Admission::TooLarge);
  CHECK(a.message.find("1000") != std::string::npos);
  wait_all({big});
  // One job runs (900 steps), one waits; the others are refused.
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i)
    jobs.push_back(std::make_shared<Job>(spec_of(prompt_of(20, unsigned(i), 64), 900, policy::Dense{})));
  CHECK(s.submit(jobs[0]).status == Admission::Queued);
  // jobs[0] leaves the queue when the scheduler admits it; until then it counts as waiting.
  int queued = 1, full = 0;
  for (int i = 1; i < 4; ++i) {
    const auto st = s.submit(jobs[std::size_t(i)]).status;
    if (st == Admission::Queued) ++queued;
    if (st == Admission::QueueFull) ++full;
  }
  CHECK(queued <= 2);
  CHECK(full >= 2);
  CHECK(queued + full == 4);
  for (auto& j : jobs) s.cancel(j);
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (s.metrics().running + s.metrics().waiting > 0 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(s.metrics().pool_blocks_used == 0);
  CHECK(s.metrics().requests_rejected == 1 + full);
}

TEST_CASE("server scheduler: any of the stop ids ends a job with Finish::Stop") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const JobSpec greedy = spec_of({1, 5, 9}, 3, policy::Dense{});
  const auto ref = alone(model, {greedy});
  REQUIRE(ref[0].size() == 3);
  SchedulerOptions o;
  // The second generated token is the stop (not the first id in the list): the job keeps the first.
  o.stop_ids = {-7, ref[0][1]};
  if (ref[0][0] == ref[0][1]) o.stop_ids = {-7, ref[0][2]};
  Scheduler<CpuBackend> s(model, o);
  JobSpec sp = greedy;
  sp.ignore_eos = false;
  auto j = std::make_shared<Job>(sp);
  REQUIRE(s.submit(j).status == Admission::Queued);
  wait_all({j});
  CHECK(j->finish_reason() == Finish::Stop);
  const auto got = tokens_of(*j);
  CHECK(got.size() < ref[0].size());
  CHECK(std::equal(got.begin(), got.end(), ref[0].begin()));
}

TEST_CASE("server chat formats: the pick from --chat-format, the declared template, the model's name") {
  const auto dir = test::scratch("server_chat_pick");
  auto declared_in = [&](const std::string& jinja) {
    test::write_file(dir / "tokenizer_config.json",
                     nlohmann::json{{"chat_template", jinja}, {"eos_token", "<|end_of_text|>"}}.dump());
    return read_chat_template(dir);
  };
  const auto llama3 = declared_in(
      "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
      "{{ m.content | trim }}<|eot_id|>{% endfor %}");
  REQUIRE(llama3);
  CHECK(pick_chat_format("", "models/Llama-3.2-1B", llama3).name == "llama3");
  CHECK(pick_chat_format("", "models/lazyqa", llama3).name == "llama3");  // the declared template wins
  CHECK(pick_chat_format("qa", "models/whatever", llama3).name == "qa");  // --chat-format wins
  CHECK(pick_chat_format("chatml", "models/whatever", llama3).name == "chatml");
  const auto chatml = declared_in(
      "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}"
      "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
  REQUIRE(chatml);
  CHECK(pick_chat_format("", "qwen", chatml).name == "chatml");
  CHECK(pick_chat_format("chatml", "qwen", chatml).name == "chatml");
  // Today's defaults without a declared template.
  CHECK(pick_chat_format("", "models/lazyqa", std::nullopt).name == "qa");
  CHECK(pick_chat_format("", "models/lazyqa-small/", std::nullopt).name == "qa");
  CHECK(pick_chat_format("", "stories15M.bin", std::nullopt).name == "llama2");
  CHECK(pick_chat_format("llama3", "stories15M.bin", std::nullopt).name == "llama3");
  CHECK_THROWS_AS(pick_chat_format("mistral", "x", std::nullopt), InvalidArgument);
  std::vector<std::string> names;
  for (const auto& f : chat_formats()) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"llama2", "llama3", "chatml", "qa"});

  // With the shared Llama 3 and Qwen3 tokenizers: the same ids as the library's chat_tokens().
  if (!test::have_shared("tokenizers/llama3/tokenizer.json") || !test::have_shared("tokenizers/qwen3/tokenizer.json"))
    return;
#if LAZYLLM_WITH_HF_TOKENIZER
  const std::vector<ChatMessage> msgs{{"system", "Be brief."}, {"user", "Hi"}};
  for (const char* fam : {"llama3", "qwen3"}) {
    CAPTURE(fam);
    const auto tdir = test::shared_models() / "tokenizers" / fam;
    const Tokenizer tok = load_tokenizer((tdir / "tokenizer.json").string());
    const auto t = read_chat_template(tdir);
    REQUIRE(t);
    const auto f = pick_chat_format("", "m", t);
    CHECK(f.name == (std::string(fam) == "llama3" ? "llama3" : "chatml"));
    CHECK(f.tokens(tok, msgs) == chat_tokens(tok, *t, msgs));
  }
#endif
}

TEST_CASE("server stop ids: config.json's bos/eos ids (an id or a list), within the vocabulary") {
  const auto dir = test::scratch("server_stop_ids");
  test::write_file(dir / "config.json",
                   R"({"bos_token_id": 128000, "eos_token_id": [128001, 128009, 200000, 128001]})");
  CHECK(cli::stop_ids(dir, nullptr, "", nullptr, 128256) == std::vector<std::int32_t>{128000, 128001, 128009});
  CHECK(cli::stop_ids(dir / "config.json", nullptr, "", nullptr, 128256).size() == 3);
  test::write_file(dir / "config.json", R"({"eos_token_id": 151645})");
  CHECK(cli::stop_ids(dir, nullptr, "", nullptr, 151936) == std::vector<std::int32_t>{151645});
  CHECK(cli::stop_ids("stories15M.bin", nullptr, "", nullptr, 32000).empty());  // not an HF directory
  // A tokenizer.json may have fewer ids than the model (padded embeddings), never more.
  CHECK(cli::tokenizer_fits("t/tokenizer.json", 151669, 152064));
  CHECK_FALSE(cli::tokenizer_fits("t/tokenizer.json", 151669, 128256));
  CHECK_FALSE(cli::tokenizer_fits("t/tokenizer.model", 31999, 32000));
  CHECK(cli::tokenizer_fits("t/tokenizer.model", 32000, 32000));
}
