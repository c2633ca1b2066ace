# SPDX-License-Identifier: MIT
# SentencePiece for lazyllm/text/sentencepiece.hpp (Debian: apt-get install libsentencepiece-dev).
#
# Defines:
#   LAZYLLM_SENTENCEPIECE       cache: AUTO (use it when found), ON (required) or OFF
#   LAZYLLM_HAS_SENTENCEPIECE   ON when found and enabled, else OFF
#   lazyllm::sentencepiece      IMPORTED INTERFACE target, always defined. When found it adds the
#                               include dir, links libsentencepiece and defines
#                               LAZYLLM_WITH_SENTENCEPIECE=1; otherwise it only defines
#                               LAZYLLM_WITH_SENTENCEPIECE=0 so that lazyllm/text/tokenizer.hpp
#                               compiles without it (.model files then give a FormatError).
# Link every target that includes lazyllm/text/tokenizer.hpp against lazyllm::sentencepiece:
# without the macro the header falls back to __has_include(<sentencepiece_processor.h>) and would
# then need -lsentencepiece.
include_guard(GLOBAL)

set(LAZYLLM_SENTENCEPIECE AUTO CACHE STRING "Use SentencePiece for .model tokenizers: AUTO, ON or OFF")
set_property(CACHE LAZYLLM_SENTENCEPIECE PROPERTY STRINGS AUTO ON OFF)

set(LAZYLLM_HAS_SENTENCEPIECE OFF)
if(NOT LAZYLLM_SENTENCEPIECE STREQUAL "OFF")
  find_path(LAZYLLM_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
  find_library(LAZYLLM_SENTENCEPIECE_LIBRARY sentencepiece)
  if(LAZYLLM_SENTENCEPIECE_INCLUDE_DIR AND LAZYLLM_SENTENCEPIECE_LIBRARY)
    set(LAZYLLM_HAS_SENTENCEPIECE ON)
  elseif(LAZYLLM_SENTENCEPIECE STREQUAL "ON")
    message(FATAL_ERROR "LAZYLLM_SENTENCEPIECE=ON but sentencepiece_processor.h / libsentencepiece were not "
                        "found (Debian: apt-get install libsentencepiece-dev)")
  endif()
endif()

if(NOT TARGET lazyllm::sentencepiece)
  add_library(lazyllm::sentencepiece INTERFACE IMPORTED)
  if(LAZYLLM_HAS_SENTENCEPIECE)
    target_include_directories(lazyllm::sentencepiece INTERFACE "${LAZYLLM_SENTENCEPIECE_INCLUDE_DIR}")
    target_link_libraries(lazyllm::sentencepiece INTERFACE "${LAZYLLM_SENTENCEPIECE_LIBRARY}")
    target_compile_definitions(lazyllm::sentencepiece INTERFACE LAZYLLM_WITH_SENTENCEPIECE=1)
  else()
    target_compile_definitions(lazyllm::sentencepiece INTERFACE LAZYLLM_WITH_SENTENCEPIECE=0)
  endif()
endif()
message(STATUS "lazyllm: SentencePiece ${LAZYLLM_HAS_SENTENCEPIECE}")
