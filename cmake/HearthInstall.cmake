# Where `cmake --install` puts hearth (GNUInstallDirs), and the defaults compiled into hearthd that
# follow from it. Configure with the prefix you install to:
#
#   cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr      # the Debian package does this
#   cmake --install build
#
# The compiled-in plugin directory and the installed hearth.yaml are decided at configure time,
# so change the prefix with -DCMAKE_INSTALL_PREFIX, not with `cmake --install --prefix`.
include(GNUInstallDirs)

set(HEARTH_INSTALL_PLUGINDIR "${CMAKE_INSTALL_LIBDIR}/hearth/plugins" CACHE STRING
    "Plugin modules (*.so), relative to CMAKE_INSTALL_PREFIX or absolute; hub.plugin_dir's default")
set(HEARTH_INSTALL_WWWDIR "${CMAKE_INSTALL_DATADIR}/hearth/www" CACHE STRING
    "The web app's files, relative to CMAKE_INSTALL_PREFIX or absolute")
# The broker is not installed by `cmake --install`; an install that sets one up for hearth (the
# Debian package) names its Dynamic Security file here, so that backups include the accounts.
set(HEARTH_DYNSEC_FILE "" CACHE STRING
    "broker.dynsec_file's default (absolute path), empty = none; debian/rules sets the package's")
set(HEARTH_WEB_APP_BUILD_DIR "${CMAKE_BINARY_DIR}/web" CACHE PATH
    "Built web app (clients/web) installed to HEARTH_INSTALL_WWWDIR when it exists at install time")

# The Debian 12 unit directory is /lib/systemd/system (what systemd.pc says); other prefixes get
# their own lib/systemd/system.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  pkg_get_variable(hearth_systemd_unitdir systemd systemdsystemunitdir)
  if(NOT hearth_systemd_unitdir)
    set(hearth_systemd_unitdir /lib/systemd/system)
  endif()
else()
  set(hearth_systemd_unitdir lib/systemd/system)
endif()
set(HEARTH_INSTALL_SYSTEMDUNITDIR "${hearth_systemd_unitdir}" CACHE STRING
    "systemd system units, relative to CMAKE_INSTALL_PREFIX or absolute")

# Writes FILE only when CONTENT differs, so an unchanged file keeps its time stamp.
function(hearth_write_if_changed file content)
  if(EXISTS "${file}")
    file(READ "${file}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${file}" "${content}")
endfunction()

function(hearth_full_install_path out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
hearth_full_install_path(HEARTH_PLUGIN_DIR "${HEARTH_INSTALL_PLUGINDIR}")
hearth_full_install_path(HEARTH_WWW_DIR "${HEARTH_INSTALL_WWWDIR}")
# The paths become YAML plain scalars (hearth.yaml, the schema's default column) and C strings.
set(hearth_checked_paths HEARTH_PLUGIN_DIR HEARTH_WWW_DIR)
if(NOT HEARTH_DYNSEC_FILE STREQUAL "")
  list(APPEND hearth_checked_paths HEARTH_DYNSEC_FILE)
endif()
foreach(path ${hearth_checked_paths})
  if(NOT ${path} MATCHES "^/[A-Za-z0-9/._+-]*$")
    message(FATAL_ERROR "${path} '${${path}}': an absolute path of letters, digits and "
                        "/ . _ + - only")
  endif()
endforeach()

# core/src/config reads these as its defaults (hub.plugin_dir, broker.dynsec_file).
configure_file(${CMAKE_SOURCE_DIR}/cmake/install_paths.h.in
               ${CMAKE_BINARY_DIR}/generated/hearth_install_paths.h @ONLY)

# The hearth.yaml that is installed: config/hearth.yaml with hub.plugin_dir set to the plugin
# directory of this prefix and broker.dynsec_file to HEARTH_DYNSEC_FILE.
# tests/unit/config_test.cc checks it carries every default.
set(hearth_yaml_source ${CMAKE_SOURCE_DIR}/config/hearth.yaml)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${hearth_yaml_source})
file(READ ${hearth_yaml_source} hearth_yaml)
set(hearth_yaml_plugin_line "  plugin_dir: /usr/lib/hearth/plugins\n")
string(FIND "${hearth_yaml}" "${hearth_yaml_plugin_line}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "config/hearth.yaml: no line '${hearth_yaml_plugin_line}' to set the "
                      "installed plugin directory in (cmake/HearthInstall.cmake)")
endif()
string(REPLACE "${hearth_yaml_plugin_line}" "  plugin_dir: ${HEARTH_PLUGIN_DIR}\n" hearth_yaml
               "${hearth_yaml}")
set(hearth_yaml_dynsec_line "  dynsec_file: \"\"\n")
string(FIND "${hearth_yaml}" "${hearth_yaml_dynsec_line}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "config/hearth.yaml: no line '${hearth_yaml_dynsec_line}' to set the "
                      "installed broker's Dynamic Security file in (cmake/HearthInstall.cmake)")
endif()
if(HEARTH_DYNSEC_FILE)
  string(REPLACE "${hearth_yaml_dynsec_line}" "  dynsec_file: ${HEARTH_DYNSEC_FILE}\n"
                 hearth_yaml "${hearth_yaml}")
endif()
hearth_write_if_changed(${CMAKE_BINARY_DIR}/config/hearth.yaml "${hearth_yaml}")
install(FILES ${CMAKE_BINARY_DIR}/config/hearth.yaml
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/hearth)

# The unit, pointed at this prefix's hearthd (systemd/hearth.service names /usr/sbin/hearthd).
file(READ ${CMAKE_SOURCE_DIR}/systemd/hearth.service hearth_unit)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/systemd/hearth.service)
set(hearth_unit_exec "ExecStart=/usr/sbin/hearthd --config /etc/hearth/hearth.yaml")
string(FIND "${hearth_unit}" "${hearth_unit_exec}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "systemd/hearth.service: no line '${hearth_unit_exec}' to point at the "
                      "installed hearthd (cmake/HearthInstall.cmake)")
endif()
string(REPLACE "${hearth_unit_exec}"
       "ExecStart=${CMAKE_INSTALL_FULL_SBINDIR}/hearthd --config ${CMAKE_INSTALL_FULL_SYSCONFDIR}/hearth/hearth.yaml"
       hearth_unit "${hearth_unit}")
hearth_write_if_changed(${CMAKE_BINARY_DIR}/systemd/hearth.service "${hearth_unit}")
install(FILES ${CMAKE_BINARY_DIR}/systemd/hearth.service DESTINATION ${HEARTH_INSTALL_SYSTEMDUNITDIR})

# The web app (clients/web builds it into the build tree), when it was built; its source maps
# (1.5 MB, for developers) stay in the build tree.
install(DIRECTORY ${HEARTH_WEB_APP_BUILD_DIR}/ DESTINATION ${HEARTH_INSTALL_WWWDIR} OPTIONAL
        PATTERN "*.map" EXCLUDE)

# The plugin SDK (hearth-dev): headers, hearth.pc and a CMake package (find_package(hearth)).
install(DIRECTORY ${CMAKE_SOURCE_DIR}/core/include/hearth
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.h")
# In hearth.pc relative to ${prefix}, so PKG_CONFIG_SYSROOT_DIR and --define-prefix work.
if(IS_ABSOLUTE "${HEARTH_INSTALL_PLUGINDIR}")
  set(HEARTH_PC_PLUGINDIR "${HEARTH_INSTALL_PLUGINDIR}")
else()
  set(HEARTH_PC_PLUGINDIR "\${prefix}/${HEARTH_INSTALL_PLUGINDIR}")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/hearth.pc.in ${CMAKE_BINARY_DIR}/hearth.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hearth.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)
include(CMakePackageConfigHelpers)
set(HEARTH_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hearth)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/hearthConfig.cmake.in
  ${CMAKE_BINARY_DIR}/hearthConfig.cmake
  INSTALL_DESTINATION ${HEARTH_CMAKE_INSTALL_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR HEARTH_INSTALL_PLUGINDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hearthConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hearthConfig.cmake ${CMAKE_BINARY_DIR}/hearthConfigVersion.cmake
        DESTINATION ${HEARTH_CMAKE_INSTALL_DIR} COMPONENT dev)
