# hearth_add_plugin(NAME src...) builds plugins/<NAME>.so as a MODULE with hidden symbols
# (only hearth_plugin_entry is exported) behind its own switch HEARTH_PLUGIN_<NAME>.
function(hearth_add_plugin name)
  string(TOUPPER ${name} upper)
  option(HEARTH_PLUGIN_${upper} "Build the ${name} plugin" ON)
  if(NOT HEARTH_PLUGIN_${upper})
    return()
  endif()
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${HEARTH_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/core/include)
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  hearth_warnings(${name})
  # Every plugin is installed where hearthd looks by default (cmake/HearthInstall.cmake).
  install(TARGETS ${name} LIBRARY DESTINATION ${HEARTH_INSTALL_PLUGINDIR})
endfunction()

# hearth_unit_test_links(TEST lib...) links extra libraries into the unit test
# tests/unit/TEST.cc (e.g. a plugin's testable sources built as a STATIC library with
# POSITION_INDEPENDENT_CODE, shared by the plugin module and its test).
function(hearth_unit_test_links test)
  set_property(GLOBAL APPEND PROPERTY HEARTH_TEST_LINKS_${test} ${ARGN})
endfunction()
