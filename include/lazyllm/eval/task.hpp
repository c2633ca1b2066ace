// SPDX-License-Identifier: MIT
// The synthetic multi-document QA task ("lazyllm_mdqa"): seeded generation of entity documents,
// a question about one fact (or a two-document "friend" chain), the prompt template, and the
// LongBench JSONL record. The one implementation shared by training (tools/train), the
// evaluator (lazyllm-eval) and the driver's demo.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace lazyllm::eval {

// ------------------------------------------------------------------ the prompt template

/// The task's prompt template: the context (documents and any filler notes, each ending in "\n\n"), then
/// the question.
/// The model's target continuation is " " + answers[0], then EOS.
inline constexpr std::string_view kMdqaTemplate = "{context}Question: {input}\nAnswer:";

/// `tmpl` with every "{context}" and "{input}" replaced (single pass: replaced text is not rescanned).
inline std::string fill_template(std::string_view tmpl, std::string_view context, std::string_view input) {
  std::string out;
  out.reserve(tmpl.size() + context.size() + input.size());
  for (std::size_t i = 0; i < tmpl.size();) {
    if (tmpl.substr(i, 9) == "{context}") {
      out.append(context);
      i += 9;
    } else if (tmpl.substr(i, 7) == "{input}") {
      out.append(input);
      i += 7;
    } else {
      out.push_back(tmpl[i++]);
    }
  }
  return out;
}

/// The full prompt of a task example: context + "Question: " + input + "\nAnswer:".
inline std::string mdqa_prompt(std::string_view context, std::string_view input) {
  return fill_template(kMdqaTemplate, context, input);
}

/// A practice turn (training only, see TaskOptions::questions): a question about the context
/// already answered, placed between the documents and the real question.
inline std::string practice_turn(std::string_view question, std::string_view answer) {
  return "Question: " + std::string(question) + "\nAnswer: " + std::string(answer) + "\n\n";
}

// ------------------------------------------------------------------ word lists

namespace detail {

// Fixed, closed lists (no name is also a city, job, colour or pet). Changing them changes every
// generated file: the shipped model's tokenizer was built from them.
inline constexpr std::string_view kFirstNames[] = {
    "Mara",  "Ivo",    "Lena",   "Tomas",  "Nora",   "Elias", "Sofia",  "Jonas",  "Clara",  "Felix",  "Ada",
    "Hugo",  "Ines",   "Oskar",  "Vera",   "Milan",  "Greta", "Anton",  "Lucia",  "Emil",   "Petra",  "Karl",
    "Alma",  "Bruno",  "Dora",   "Viktor", "Elsa",   "Marek", "Rosa",   "Leon",   "Hanna",  "Pavel",  "Irene",
    "Otto",  "Selma",  "Rafael", "Tilda",  "Simon",  "Edith", "Jakob",  "Livia",  "Arne",   "Olga",   "Mateo",
    "Freya", "Bastian", "Kira",  "Lukas",  "Nadia",  "Theo",  "Yara",   "Gustav", "Helga",  "Dario",  "Mila",
    "Sven",  "Carla",  "Rudolf", "Zora",   "Aron",   "Leni",  "Ennio",  "Wanda",  "Boris"};
inline constexpr std::string_view kLastNames[] = {
    "Keller",  "Brandt",   "Novak",    "Larsen",  "Moreau",    "Fischer", "Rossi",    "Holm",     "Weber",
    "Costa",   "Lindqvist", "Horvat",  "Dietrich", "Romero",   "Sandberg", "Kowalski", "Berger",  "Marino",
    "Nyberg",  "Vogel",    "Castillo", "Petrov",  "Hartmann",  "Janssen", "Ferrari",  "Lund",     "Schmid",
    "Dvorak",  "Olsen",    "Bauer",    "Navarro", "Wolff",     "Ekstrom", "Kraus",    "Moretti",  "Falk",
    "Varga",   "Richter",  "Lorenz",   "Quinn",   "Adler",     "Baxter",  "Carver",   "Dalton",   "Ellison",
    "Fletcher", "Garner",  "Harlow",   "Ingram",  "Jarvis",    "Kendall", "Lambert",  "Mercer",   "Norris",
    "Oakley",  "Prescott", "Ramsey",   "Sutton",  "Thorne",    "Underwood", "Vance",  "Whitaker", "Yates",
    "Zeller"};
inline constexpr std::string_view kCities[] = {
    "Oslo",      "Lisbon",  "Vienna",   "Prague",   "Dublin",   "Madrid",   "Berlin",    "Paris",
    "Rome",      "Athens",  "Warsaw",   "Budapest", "Helsinki", "Stockholm", "Copenhagen", "Amsterdam",
    "Brussels",  "Zurich",  "Geneva",   "Munich",   "Hamburg",  "Naples",   "Porto",     "Seville",
    "Valencia",  "Krakow",  "Riga",     "Tallinn",  "Vilnius",  "Bucharest", "Belgrade", "Zagreb",
    "Ljubljana", "Bratislava", "Salzburg", "Lyon",  "Marseille", "Bordeaux", "Edinburgh", "Glasgow",
    "Cardiff",   "Toronto", "Boston",   "Chicago",  "Denver",   "Seattle",  "Sydney",    "Melbourne",
    "Auckland",  "Tokyo",   "Osaka",    "Seoul",    "Cairo",    "Nairobi",  "Lima",      "Quito",
    "Santiago",  "Montreal"};
inline constexpr std::string_view kJobs[] = {
    "baker",       "teacher",   "nurse",      "pilot",      "farmer",     "lawyer",      "dentist",
    "plumber",     "carpenter", "chemist",    "architect",  "journalist", "librarian",   "butcher",
    "painter",     "sculptor",  "tailor",     "engineer",   "surgeon",    "pharmacist",  "electrician",
    "gardener",    "fisherman", "mechanic",   "translator", "accountant", "photographer", "firefighter",
    "veterinarian", "astronomer", "economist", "musician"};
inline constexpr std::string_view kColours[] = {"red",    "blue",   "green",     "yellow",  "orange", "purple",
                                                "pink",   "brown",  "black",     "white",   "grey",   "violet",
                                                "indigo", "turquoise", "crimson", "beige",  "silver", "gold",
                                                "maroon", "teal",   "olive",     "amber"};
inline constexpr std::string_view kPets[] = {"dog",    "cat",      "parrot",  "rabbit", "hamster", "goldfish", "turtle",
                                             "canary", "ferret",   "lizard",  "horse",  "pony",    "goat",     "snake",
                                             "frog",   "iguana",   "owl",     "duck",   "pig",     "donkey",   "mouse",
                                             "chinchilla", "hedgehog", "gecko", "alpaca", "crow"};
inline constexpr int kFirstYear = 1940, kYears = 60;  // 1940 .. 1999
// Filler (TaskOptions::filler): sentences that state nothing a question can ask about. None of
// their words is a name, city, job, colour, pet or year of the lists above (tests/cpu/test_eval.cpp
// checks it), so a note never competes with a document for an answer.
inline constexpr std::string_view kFillerSentences[] = {"The river ran high after the spring rain.",
                                                        "A narrow bridge crossed the stream below the village.",
                                                        "The market opened early and closed before noon.",
                                                        "Wind from the sea rattled the shutters all night.",
                                                        "The old clock in the square had stopped long ago.",
                                                        "Fresh bread was sold from a cart near the station.",
                                                        "Snow covered the hills for most of the winter.",
                                                        "The library kept its oldest maps in a locked room.",
                                                        "Children played football in the park on weekends.",
                                                        "A long queue formed outside the museum every morning.",
                                                        "The road to the harbour was repaired last summer.",
                                                        "Lanterns were hung along the main street for the festival.",
                                                        "The train was late again because of the fog.",
                                                        "Most shops stayed closed on the first day of the month.",
                                                        "The garden behind the school was full of tall sunflowers.",
                                                        "An orchestra rehearsed in the hall every evening.",
                                                        "The lake froze early that winter.",
                                                        "Visitors often got lost in the narrow lanes of the old town.",
                                                        "The bakery on the corner sold out of cakes by noon.",
                                                        "A storm knocked down several trees near the road.",
                                                        "The ferry crossed the bay twice a day.",
                                                        "Apples from the valley were sent to markets far away.",
                                                        "The town council met on the last day of each month.",
                                                        "Many windows faced south to catch the afternoon sun.",
                                                        "The path through the forest was marked with small stones.",
                                                        "Bells rang from the tower at noon.",
                                                        "The harvest was good despite the dry summer.",
                                                        "A new school was built on the edge of the town.",
                                                        "The castle on the hill was open to visitors in summer.",
                                                        "Rain fell steadily through the whole afternoon.",
                                                        "The square was quiet after the festival ended.",
                                                        "Boats were pulled onto the beach before the storm."};

template <class T, std::size_t N>
constexpr std::size_t count_of(const T (&)[N]) {
  return N;
}

/// splitmix64: the project's portable PRNG (std distributions differ between standard libraries).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (the modulo bias is below 2^-40 for the small n used here).
  std::size_t below(std::size_t n) { return std::size_t(next() % n); }
  /// Uniform in [0, 1).
  double unit() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

inline std::string_view article(std::string_view noun) {
  return std::string_view("aeiou").find(noun.front()) != std::string_view::npos ? "an" : "a";
}

}  // namespace detail

/// Number of distinct entity names (first x last).
inline constexpr std::size_t kNameCount = detail::count_of(detail::kFirstNames) * detail::count_of(detail::kLastNames);

/// Every word the generator can emit (names and fact values), for building a vocabulary.
inline std::vector<std::string> vocabulary_words() {
  std::vector<std::string> w;
  for (auto s : detail::kFirstNames) w.emplace_back(s);
  for (auto s : detail::kLastNames) w.emplace_back(s);
  for (auto s : detail::kCities) w.emplace_back(s);
  for (auto s : detail::kJobs) w.emplace_back(s);
  for (auto s : detail::kColours) w.emplace_back(s);
  for (auto s : detail::kPets) w.emplace_back(s);
  for (int y = 0; y < detail::kYears; ++y) w.push_back(std::to_string(detail::kFirstYear + y));
  return w;
}

// ------------------------------------------------------------------ entities and documents

/// The facts a document states, in this order.
enum class Attribute { City, Job, Colour, Year, Pet, Friend };
inline constexpr int kAttributeCount = 6;

/// One person: a unique name and one value per attribute.
struct Entity {
  std::string name;
  std::string city, job, colour, year, pet, friend_name;

  const std::string& value(Attribute a) const {
    switch (a) {
      case Attribute::City: return city;
      case Attribute::Job: return job;
      case Attribute::Colour: return colour;
      case Attribute::Year: return year;
      case Attribute::Pet: return pet;
      case Attribute::Friend: break;
    }
    return friend_name;
  }
};

/// "Document 3: Mara Keller\nMara Keller lives in Oslo. ... Mara Keller's friend is Ivo Brandt.\n\n"
/// (`number` counts from 1).
inline std::string render_document(const Entity& e, int number) {
  const std::string& n = e.name;
  std::string s = "Document " + std::to_string(number) + ": " + n + "\n";
  s += n + " lives in " + e.city + ". ";
  s += n + " works as " + std::string(detail::article(e.job)) + " " + e.job + ". ";
  s += n + "'s favourite colour is " + e.colour + ". ";
  s += n + " was born in " + e.year + ". ";
  s += n + "'s pet is " + std::string(detail::article(e.pet)) + " " + e.pet + ". ";
  s += n + "'s friend is " + e.friend_name + ".\n\n";
  return s;
}

/// The question about attribute `a` of `name`.
inline std::string single_question(Attribute a, const std::string& name) {
  switch (a) {
    case Attribute::City: return "Where does " + name + " live?";
    case Attribute::Job: return "What is " + name + "'s job?";
    case Attribute::Colour: return "What is " + name + "'s favourite colour?";
    case Attribute::Year: return "In which year was " + name + " born?";
    case Attribute::Pet: return "What is " + name + "'s pet?";
    case Attribute::Friend: break;
  }
  return "Who is " + name + "'s friend?";
}

/// The question about attribute `a` (not Friend) of the friend of `name`.
inline std::string twohop_question(Attribute a, const std::string& name) {
  const std::string f = "the friend of " + name;
  switch (a) {
    case Attribute::City: return "Where does " + f + " live?";
    case Attribute::Job: return "What is the job of " + f + "?";
    case Attribute::Colour: return "What is the favourite colour of " + f + "?";
    case Attribute::Year: return "In which year was " + f + " born?";
    case Attribute::Pet: return "What is the pet of " + f + "?";
    case Attribute::Friend: break;
  }
  throw InvalidArgument("twohop_question: the friend's friend is not a task question");
}

// ------------------------------------------------------------------ examples

enum class Variant { Single, Twohop, Mixed };

inline Variant parse_variant(std::string_view s) {
  if (s == "single") return Variant::Single;
  if (s == "twohop") return Variant::Twohop;
  if (s == "mixed") return Variant::Mixed;
  throw InvalidArgument("variant '" + std::string(s) + "' is not one of single, twohop, mixed");
}

inline constexpr std::string_view kDatasetSingle = "lazyllm_mdqa";
inline constexpr std::string_view kDatasetTwohop = "lazyllm_mdqa_twohop";

/// Counts the length of a full prompt (the text the model reads), in the unit of `length`.
using LengthCounter = std::function<std::int64_t(std::string_view prompt)>;

/// Tokens as the model reads the prompt: BOS + the tokenizer's encoding.
inline LengthCounter token_counter(Tokenizer tok) {
  return [tok = std::move(tok)](std::string_view p) { return std::int64_t(tok.encode(p, true).size()); };
}

/// Whitespace-separated words (the approximation used without a tokenizer: 1 word ~ 1 token).
inline LengthCounter word_counter() {
  return [](std::string_view p) {
    std::int64_t n = 0;
    bool in_word = false;
    for (char c : p) {
      const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
      if (!space && !in_word) ++n;
      in_word = !space;
    }
    return n;
  };
}

struct TaskOptions {
  std::uint64_t seed = 0;
  std::int64_t length = 1024;  // target prompt length (unit of the LengthCounter)
  Variant variant = Variant::Single;
  /// Questions per example, for training: questions - 1 answered single-hop "practice" turns
  /// about random documents of the context come before the real question, so one sequence
  /// carries several supervised answers. Never one that gives the real answer away (not the
  /// questioned fact itself). 1 = evaluation format. `length` counts the prompt without them,
  /// and an example's documents and question do not depend on this option.
  int questions = 1;
  /// Where the evidence documents go, as fractions of the context (0 = the first document, 1 =
  /// past the last): the questioned person's document (and for two-hop the friend's) is placed
  /// uniformly in [position_lo, position_hi). The default [0, 1) is the evaluation format;
  /// training uses narrower ranges to control the distance between the answer and the question.
  double position_lo = 0.0, position_hi = 1.0;
  /// Filler: about this fraction of `length` is given to "Note: ..." paragraphs of sentences that
  /// state no fact (detail::kFillerSentences), placed at random between the documents, in place
  /// of distractor documents; the rest of the context is documents as usual. Like LongBench's
  /// long documents around the one passage that answers, it gives a context that is mostly
  /// irrelevant. Drawn from a stream of their own: the question, the answer and the evidence
  /// documents are those of filler 0 (only distractors give way). 0 (the default) = no notes,
  /// every file byte-identical to the generator without this option. At most kMaxFiller.
  double filler = 0.0;
};

inline constexpr double kMaxFiller = 0.95;

inline constexpr int kMaxQuestions = 64;

/// A question already answered in the prompt (TaskOptions::questions).
struct PracticeTurn {
  std::string input, answer;
};

/// One generated example, in LongBench's terms plus where the evidence lies.
struct TaskExample {
  std::string id;       // "mdqa-<seed>-<index>"
  std::string dataset;  // kDatasetSingle or kDatasetTwohop
  std::string input;    // the question
  std::string context;  // the documents (and filler notes), each ending in "\n\n"
  std::vector<std::string> answers;
  std::int64_t length = 0;  // of the full prompt, by the generator's counter
  int n_docs = 0;           // documents (filler notes not counted)
  int answer_doc = 0;   // 0-based position of the document holding the answer
  int subject_doc = 0;  // 0-based position of the questioned entity's document (== answer_doc for single)
  Attribute attribute = Attribute::City;
  std::vector<PracticeTurn> practice;  // empty unless TaskOptions::questions > 1

  /// The evaluation prompt (no practice turns).
  std::string prompt() const { return mdqa_prompt(context, input); }
  /// The documents, then the practice turns, then the question: the training text before the
  /// answer. Equal to prompt() without practice turns.
  std::string training_prompt() const {
    std::string c = context;
    for (const auto& t : practice) c += practice_turn(t.input, t.answer);
    return mdqa_prompt(c, input);
  }
};

/// The generator. Example i depends only on (seed, i, length, variant, filler, counter): a file of N
/// examples is a prefix of a file of N + M with the same options.
///
/// Length: documents are added while the prompt stays within `length`; the result has the most
/// documents whose prompt length is <= length by the counter's estimate (documents counted one by
/// one), then the exact count of the whole prompt is taken and distractors are dropped while it
/// exceeds `length`. So length <= target unless the required documents alone exceed it, and the
/// shortfall is below about two documents' length. The answer document's position is uniform.
class TaskGenerator {
 public:
  explicit TaskGenerator(TaskOptions opt, LengthCounter counter = word_counter())
      : opt_(opt), count_(std::move(counter)) {
    if (opt_.length < 1) throw InvalidArgument("task length must be positive");
    if (opt_.questions < 1 || opt_.questions > kMaxQuestions)
      throw InvalidArgument("task questions must be in 1.." + std::to_string(kMaxQuestions));
    if (!(opt_.filler >= 0.0 && opt_.filler <= kMaxFiller))
      throw InvalidArgument("task filler fraction " + std::to_string(opt_.filler) + " must be in [0, " +
                            std::to_string(kMaxFiller) + "]");
    if (!(opt_.position_lo >= 0.0 && opt_.position_lo < opt_.position_hi && opt_.position_hi <= 1.0))
      throw InvalidArgument("task answer position range [" + std::to_string(opt_.position_lo) + ", " +
                            std::to_string(opt_.position_hi) + ") must satisfy 0 <= lo < hi <= 1");
  }

  const TaskOptions& options() const { return opt_; }

  TaskExample example(std::uint64_t index) const {
    detail::Rng rng(opt_.seed * 0xD1B54A32D192ED03ull ^ (index + 1) * 0x9E3779B97F4A7C15ull);
    rng.next();
    const bool twohop = opt_.variant == Variant::Twohop || (opt_.variant == Variant::Mixed && rng.below(2) == 1);
    std::set<std::string> used;
    auto fresh_name = [&] {
      if (used.size() >= kNameCount) throw InvalidArgument("task: more documents than distinct names");
      for (;;) {
        std::string n = std::string(detail::kFirstNames[rng.below(detail::count_of(detail::kFirstNames))]) + " " +
                        std::string(detail::kLastNames[rng.below(detail::count_of(detail::kLastNames))]);
        if (used.insert(n).second) return n;
      }
    };
    auto any_other_name = [&](const std::string& self) {
      for (;;) {
        std::string n = std::string(detail::kFirstNames[rng.below(detail::count_of(detail::kFirstNames))]) + " " +
                        std::string(detail::kLastNames[rng.below(detail::count_of(detail::kLastNames))]);
        if (n != self) return n;
      }
    };
    auto make_entity = [&](std::string name) {
      Entity e;
      e.name = std::move(name);
      e.city = detail::kCities[rng.below(detail::count_of(detail::kCities))];
      e.job = detail::kJobs[rng.below(detail::count_of(detail::kJobs))];
      e.colour = detail::kColours[rng.below(detail::count_of(detail::kColours))];
      e.year = std::to_string(detail::kFirstYear + int(rng.below(detail::kYears)));
      e.pet = detail::kPets[rng.below(detail::count_of(detail::kPets))];
      e.friend_name = any_other_name(e.name);
      return e;
    };

    TaskExample ex;
    ex.id = "mdqa-" + std::to_string(opt_.seed) + "-" + std::to_string(index);
    ex.dataset = std::string(twohop ? kDatasetTwohop : kDatasetSingle);
    // Required documents: the subject, and for twohop the subject's friend.
    std::vector<Entity> required;
    required.push_back(make_entity(fresh_name()));
    if (twohop) {
      Entity f = make_entity(fresh_name());
      if (f.friend_name == required[0].name) f.friend_name = any_other_name(f.name);
      required[0].friend_name = f.name;
      required.push_back(std::move(f));
      ex.attribute = Attribute(rng.below(kAttributeCount - 1));  // not Friend
      ex.input = twohop_question(ex.attribute, required[0].name);
      ex.answers = {required[1].value(ex.attribute)};
    } else {
      ex.attribute = Attribute(rng.below(kAttributeCount));
      ex.input = single_question(ex.attribute, required[0].name);
      ex.answers = {required[0].value(ex.attribute)};
    }
    // Positions, as fractions of the final document count (known only at the end).
    // Mapped into the position range; the default [0, 1) leaves them exactly as drawn.
    const double span = opt_.position_hi - opt_.position_lo;
    const double u_subject = opt_.position_lo + rng.unit() * span, u_friend = opt_.position_lo + rng.unit() * span;

    // Add distractors while the estimate stays within the target.
    const std::int64_t empty = count_(std::string_view{});
    auto doc_cost = [&](const Entity& e, int number) { return count_(render_document(e, number)) - empty; };
    std::int64_t estimate = count_(mdqa_prompt("", ex.input));
    for (const auto& e : required) estimate += doc_cost(e, 1);
    const Notes notes = make_notes(index, empty);
    estimate += notes.cost;
    std::vector<Entity> distractors;
    while (used.size() < kNameCount) {
      Entity d = make_entity(fresh_name());
      const std::int64_t c = doc_cost(d, int(required.size() + distractors.size() + 1));
      if (estimate + c > opt_.length) break;
      estimate += c;
      distractors.push_back(std::move(d));
    }
    // Exact length of the whole prompt; drop distractors (then notes) while it is over the target.
    std::vector<const Entity*> order;
    std::size_t n_notes = notes.text.size();
    for (;;) {
      order = layout(ex, required, distractors, u_subject, u_friend, notes, n_notes);
      ex.length = count_(ex.prompt());
      if (ex.length <= opt_.length) break;
      if (!distractors.empty())
        distractors.pop_back();
      else if (n_notes > 0)
        --n_notes;
      else
        break;
    }
    add_practice(ex, order, index);
    return ex;
  }

 private:
  /// Filler notes and where each goes (a fraction of the document sequence), with their cost.
  struct Notes {
    std::vector<std::string> text;
    std::vector<double> at;
    std::int64_t cost = 0;
  };

  // Notes come from their own random stream (see TaskOptions::filler): whole notes of 3-6
  // sentences while their total stays within filler x length.
  Notes make_notes(std::uint64_t index, std::int64_t empty) const {
    Notes notes;
    if (opt_.filler <= 0.0) return notes;
    detail::Rng rng(opt_.seed * 0xA24BAED4963EE407ull ^ (index + 1) * 0x9FB21C651E98DF25ull ^ 0xF111);
    rng.next();
    const auto budget = std::int64_t(opt_.filler * double(opt_.length));
    for (;;) {
      std::string note = "Note:";
      const int sentences = 3 + int(rng.below(4));
      for (int k = 0; k < sentences; ++k) {
        note += ' ';
        note += detail::kFillerSentences[rng.below(detail::count_of(detail::kFillerSentences))];
      }
      note += "\n\n";
      const std::int64_t c = count_(note) - empty;
      if (notes.cost + c > budget) break;
      notes.cost += c;
      notes.text.push_back(std::move(note));
      notes.at.push_back(rng.unit());
    }
    return notes;
  }

  // Practice turns come from their own random stream, so the rest of the example is the same
  // for every value of `questions`. Distinct facts, drawn without replacement (fewer turns when
  // the context has fewer facts to ask).
  void add_practice(TaskExample& ex, const std::vector<const Entity*>& order, std::uint64_t index) const {
    if (opt_.questions <= 1) return;
    detail::Rng rng(opt_.seed * 0x94D049BB133111EBull ^ (index + 1) * 0xBF58476D1CE4E5B9ull ^ 0x5EED);
    rng.next();
    const Entity* asked = order[std::size_t(ex.answer_doc)];
    const Entity* subject = order[std::size_t(ex.subject_doc)];
    const bool twohop = ex.dataset == kDatasetTwohop;
    std::vector<std::pair<const Entity*, Attribute>> facts;
    for (const Entity* e : order)
      for (int k = 0; k < kAttributeCount; ++k) {
        const auto a = Attribute(k);
        if (e == asked && a == ex.attribute) continue;                         // the real answer itself
        if (twohop && e == subject && a == Attribute::Friend) continue;        // half of its chain
        facts.emplace_back(e, a);
      }
    const std::size_t n = std::min(facts.size(), std::size_t(opt_.questions - 1));
    for (std::size_t i = 0; i < n; ++i) {  // partial Fisher-Yates
      std::swap(facts[i], facts[i + rng.below(facts.size() - i)]);
      ex.practice.push_back({single_question(facts[i].second, facts[i].first->name), facts[i].first->value(facts[i].second)});
    }
  }

  // Documents in order, the subject (and friend) at their drawn places; note k goes before
  // document floor(at_k x (n + 1)) (n + 1: after the last), for the first n_notes notes.
  static std::vector<const Entity*> layout(TaskExample& ex, const std::vector<Entity>& required,
                                           const std::vector<Entity>& distractors, double u_subject, double u_friend,
                                           const Notes& notes, std::size_t n_notes) {
    const int n = int(required.size() + distractors.size());
    const int subject = std::min(n - 1, int(u_subject * n));
    int friend_pos = -1;
    if (required.size() == 2) {  // uniform over the other n - 1 positions
      friend_pos = std::min(n - 2, int(u_friend * (n - 1)));
      if (friend_pos >= subject) ++friend_pos;
    }
    ex.context.clear();
    std::vector<const Entity*> order;
    std::size_t next_distractor = 0;
    auto notes_before = [&](int slot) {
      for (std::size_t k = 0; k < n_notes; ++k)
        if (std::min(n, int(notes.at[k] * (n + 1))) == slot) ex.context += notes.text[k];
    };
    for (int i = 0; i < n; ++i) {
      notes_before(i);
      const Entity& e = i == subject ? required[0] : i == friend_pos ? required[1] : distractors[next_distractor++];
      ex.context += render_document(e, i + 1);
      order.push_back(&e);
    }
    notes_before(n);
    ex.n_docs = n;
    ex.subject_doc = subject;
    ex.answer_doc = friend_pos >= 0 ? friend_pos : subject;
    return order;
  }

  TaskOptions opt_;
  LengthCounter count_;
};

/// The LongBench JSONL record: input, context, answers, length, dataset, language, all_classes,
/// _id; with `with_prompt` also "prompt" (the full templated text, so no one re-implements it).
inline nlohmann::ordered_json to_json(const TaskExample& ex, bool with_prompt = false) {
  nlohmann::ordered_json j;
  j["input"] = ex.input;
  j["context"] = ex.context;
  j["answers"] = ex.answers;
  j["length"] = ex.length;
  j["dataset"] = ex.dataset;
  j["language"] = "en";
  j["all_classes"] = nullptr;
  j["_id"] = ex.id;
  // Where the evidence is (0-based document indices; not LongBench fields, readers ignore them):
  // lazyllm-eval reports scores by the answer document's position when they are present.
  j["n_docs"] = ex.n_docs;
  j["answer_doc"] = ex.answer_doc;
  j["subject_doc"] = ex.subject_doc;
  if (with_prompt) j["prompt"] = ex.prompt();
  if (!ex.practice.empty()) {
    // Training text = segments concatenated, then EOS; "answer" segments are supervised.
    nlohmann::ordered_json seg = nlohmann::ordered_json::array();
    std::string text = ex.context;
    for (const auto& t : ex.practice) {
      seg.push_back({{"text", text + "Question: " + t.input + "\nAnswer:"}, {"kind", "prompt"}});
      seg.push_back({{"text", " " + t.answer}, {"kind", "practice_answer"}});
      text = "\n\n";
    }
    seg.push_back({{"text", text + "Question: " + ex.input + "\nAnswer:"}, {"kind", "prompt"}});
    seg.push_back({{"text", " " + ex.answers[0]}, {"kind", "answer"}});
    j["training_segments"] = std::move(seg);
  }
  return j;
}

}  // namespace lazyllm::eval
