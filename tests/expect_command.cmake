# expect_command(NAME RC REGEX COMMAND [ARGS...]): runs the command as a user would and fails the
# test (SEND_ERROR, so every check still runs) unless it exits with RC and its stdout + stderr
# match REGEX. Leaves LAST_STDOUT and LAST_STDERR in the caller's scope.
function(expect_command name expected_rc expected_regex)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expected_rc)
    message(SEND_ERROR "[${name}] exit code ${rc}, expected ${expected_rc}\nstdout: ${out}\nstderr: ${err}")
  elseif(NOT "${out}${err}" MATCHES "${expected_regex}")
    message(SEND_ERROR "[${name}] output does not match '${expected_regex}'\nstdout: ${out}\nstderr: ${err}")
  else()
    message(STATUS "[${name}] ok")
  endif()
  set(LAST_STDOUT "${out}" PARENT_SCOPE)
  set(LAST_STDERR "${err}" PARENT_SCOPE)
endfunction()
