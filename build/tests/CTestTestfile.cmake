# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(unit.check_acl "/work/main/build/tests/check_acl")
set_tests_properties(unit.check_acl PROPERTIES  ENVIRONMENT "CK_FORK=yes;PROXYD_SRC=/work/main" LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;10;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(unit.check_http_parse "/work/main/build/tests/check_http_parse")
set_tests_properties(unit.check_http_parse PROPERTIES  ENVIRONMENT "CK_FORK=yes;PROXYD_SRC=/work/main" LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;10;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(unit.check_url "/work/main/build/tests/check_url")
set_tests_properties(unit.check_url PROPERTIES  ENVIRONMENT "CK_FORK=yes;PROXYD_SRC=/work/main" LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;10;add_test;/work/main/tests/CMakeLists.txt;0;")
