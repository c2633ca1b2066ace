# Writes OUT: a C++ file holding IN (the chat page) as kChatPage, so the binary serves it
# without reading files at run time.
file(READ "${IN}" content)
string(FIND "${content}" ")lazyllm_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )lazyllm_page\"")
endif()
file(WRITE "${OUT}.tmp" "// Generated from page.html by embed.cmake: edit page.html instead.\n#include \"http.hpp\"\n\nnamespace lazyllm::server {\nconst char* const kChatPage = R\"lazyllm_page(${content})lazyllm_page\";\n}  // namespace lazyllm::server\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
