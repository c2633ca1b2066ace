# The core headers must not pull in nlohmann/json (JSON output is opt-in: lazyllm/report/json.hpp):
# lists each header's include closure with the compiler (-M) and fails if nlohmann appears in it.
# Variables: CXX, INCLUDE, OUT.
file(MAKE_DIRECTORY ${OUT})
foreach(header lazyllm/pipeline.hpp lazyllm/stats.hpp lazyllm/generate.hpp)
  string(MAKE_C_IDENTIFIER ${header} id)
  file(WRITE ${OUT}/${id}.cpp "#include <${header}>\n")
  execute_process(COMMAND ${CXX} -std=c++20 -M -I${INCLUDE} ${OUT}/${id}.cpp
                  RESULT_VARIABLE rc OUTPUT_VARIABLE deps ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "[${header}] does not preprocess on its own:\n${err}")
  elseif(deps MATCHES "nlohmann")
    message(SEND_ERROR "[${header}] includes nlohmann/json (move JSON output to lazyllm/report/json.hpp)")
  else()
    message(STATUS "[${header}] ok: no nlohmann/json")
  endif()
endforeach()
