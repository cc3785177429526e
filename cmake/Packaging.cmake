# Install rules and the Debian package (CPack DEB; scripts/package drives it).
#
# Layout: faultprobed in sbin (it runs as root under systemd); faultprobe in
# bin, because `status`, `events` and `top` also work for members of the
# daemon's socket_group, whose PATH has no sbin (`snapshot` and `top --local`
# load the probe and need root either way). Man pages are kept in man/ as
# roff and installed gzipped (-9n: no name or time stamp, reproducible).
include(GNUInstallDirs)

set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

install(TARGETS faultprobed RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS faultprobe RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The unit goes where Debian 12's systemd looks for packaged units.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/faultprobed.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/faultprobe.toml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/faultprobe)

# Prometheus alerting and recording rules for a fleet (README: Many hosts).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/prometheus/faultprobe.rules.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/faultprobe/prometheus)

set(FP_MAN_PAGES faultprobe.8 faultprobed.8 faultprobe.toml.5)
set(FP_GZIPPED)
foreach(page IN LISTS FP_MAN_PAGES)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  set(gz ${PROJECT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${gz}
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
                     COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/man/${page} > ${gz}
                     DEPENDS ${PROJECT_SOURCE_DIR}/man/${page}
                     COMMENT "gzip man/${page}")
  install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  list(APPEND FP_GZIPPED ${gz})
endforeach()
set(FP_CHANGELOG_GZ ${PROJECT_BINARY_DIR}/changelog.Debian.gz)
add_custom_command(OUTPUT ${FP_CHANGELOG_GZ}
                   COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/packaging/debian/changelog > ${FP_CHANGELOG_GZ}
                   DEPENDS ${PROJECT_SOURCE_DIR}/packaging/debian/changelog
                   COMMENT "gzip packaging/debian/changelog")
add_custom_target(package_files ALL DEPENDS ${FP_GZIPPED} ${FP_CHANGELOG_GZ})

# Not a package for Debian's archive: no ITP bug to close (see the file).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME faultprobe)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/config.md
              ${PROJECT_SOURCE_DIR}/docs/rules.md ${PROJECT_SOURCE_DIR}/docs/socket-api.md
              ${PROJECT_SOURCE_DIR}/packaging/debian/copyright ${FP_CHANGELOG_GZ}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME faultprobe)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-process kernel fault monitoring with eBPF")
# The control file's Description: the summary, then this body (CPack indents it).
set(CPACK_PACKAGE_DESCRIPTION
    "faultprobe watches every process of the host through a CO-RE eBPF probe on
scheduler, block IO, memory, signal and hardware-error tracepoints. The
faultprobed service detects faults (CPU runaways, run-queue starvation,
memory leaks and pressure, OOM kills, IO storms, latency and errors,
crashes, hangs, fork bombs, hardware errors), names the culprit process and
its victims, alerts (log, syslog, Prometheus) and, by policy, throttles,
restarts, restores or kills. The faultprobe command shows the live view.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "faultprobe maintainers <maintainers@users.noreply.r-seed-cc7b1ddb.example>")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Libraries from dpkg-shlibdeps; the maintainer scripts use init-system-helpers.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "criu, rsyslog, prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
