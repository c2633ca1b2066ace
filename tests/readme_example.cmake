# Compiles the C++ example of README.md exactly as printed (it must not rot).
# Variables: README, CXX, INCLUDE, OUT.
file(READ ${README} text)
string(FIND "${text}" "```cpp\n" begin)
if(begin LESS 0)
  message(FATAL_ERROR "README.md has no ```cpp block")
endif()
math(EXPR begin "${begin} + 7")
string(SUBSTRING "${text}" ${begin} -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} code)
file(WRITE ${OUT} "#include <cstdio>\n${code}")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I${INCLUDE} ${OUT}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "README example does not compile:\n${err}")
endif()
