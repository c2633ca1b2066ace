# SPDX-License-Identifier: MIT
# PCRE2 and utf8proc for lazyllm/text/hf_tokenizer.hpp (Hugging Face tokenizer.json, byte-level BPE).
# Debian: apt-get install pkg-config libpcre2-dev libutf8proc-dev
#
# Defines:
#   LAZYLLM_HF_TOKENIZER       cache: AUTO (use it when found), ON (required) or OFF
#   LAZYLLM_HAS_HF_TOKENIZER   ON when both libraries were found and it is enabled, else OFF
#   lazyllm::hf_tokenizer      INTERFACE target, only when LAZYLLM_HAS_HF_TOKENIZER: links PCRE2
#                              (8-bit) and utf8proc and defines LAZYLLM_WITH_HF_TOKENIZER=1, so
#                              that lazyllm/text/tokenizer.hpp's load_tokenizer() reads
#                              tokenizer.json. Exported in the installed package as well.
# Code that includes lazyllm/text/tokenizer.hpp without this target still compiles: tokenizer.json
# files are then refused with a FormatError that says how to get support.
include_guard(GLOBAL)

set(LAZYLLM_HF_TOKENIZER AUTO CACHE STRING "Read Hugging Face tokenizer.json (needs PCRE2 and utf8proc): AUTO, ON or OFF")
set_property(CACHE LAZYLLM_HF_TOKENIZER PROPERTY STRINGS AUTO ON OFF)

set(LAZYLLM_HAS_HF_TOKENIZER OFF)
if(NOT LAZYLLM_HF_TOKENIZER STREQUAL "OFF")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(LAZYLLM_PCRE2 QUIET IMPORTED_TARGET GLOBAL libpcre2-8)
    pkg_check_modules(LAZYLLM_UTF8PROC QUIET IMPORTED_TARGET GLOBAL libutf8proc)
  endif()
  if(LAZYLLM_PCRE2_FOUND AND LAZYLLM_UTF8PROC_FOUND)
    set(LAZYLLM_HAS_HF_TOKENIZER ON)
  elseif(LAZYLLM_HF_TOKENIZER STREQUAL "ON")
    message(FATAL_ERROR "LAZYLLM_HF_TOKENIZER=ON but pkg-config did not find libpcre2-8 and libutf8proc "
                        "(Debian: apt-get install pkg-config libpcre2-dev libutf8proc-dev)")
  endif()
endif()

if(LAZYLLM_HAS_HF_TOKENIZER AND NOT TARGET lazyllm_hf_tokenizer)
  add_library(lazyllm_hf_tokenizer INTERFACE)
  add_library(lazyllm::hf_tokenizer ALIAS lazyllm_hf_tokenizer)
  set_target_properties(lazyllm_hf_tokenizer PROPERTIES EXPORT_NAME hf_tokenizer)
  target_link_libraries(lazyllm_hf_tokenizer INTERFACE lazyllm PkgConfig::LAZYLLM_PCRE2 PkgConfig::LAZYLLM_UTF8PROC)
  target_compile_definitions(lazyllm_hf_tokenizer INTERFACE LAZYLLM_WITH_HF_TOKENIZER=1)
  message(STATUS "lazyllm: tokenizer.json support ON (PCRE2 ${LAZYLLM_PCRE2_VERSION}, utf8proc ${LAZYLLM_UTF8PROC_VERSION})")
elseif(LAZYLLM_HF_TOKENIZER STREQUAL "OFF")
  message(STATUS "lazyllm: tokenizer.json support OFF (LAZYLLM_HF_TOKENIZER=OFF): its tests are skipped")
else()
  message(STATUS "lazyllm: tokenizer.json support OFF: lazyllm::hf_tokenizer and its tests are skipped "
                 "(install pkg-config libpcre2-dev libutf8proc-dev)")
endif()
