# make install PREFIX=... / cmake --install: the three binaries, and the package an engine that
# embeds the agent consumes (find_package(cohort) -> cohort::agent): the static libraries under
# it, their headers and the generated proto headers under include/cohort/, and the CMake files.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(COHORT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/cohort)
# Everything under one directory so that "common/..." and "agent/..." do not land in
# /usr/include itself; the exported targets add include/cohort to the include path.
set(COHORT_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/cohort)

install(TARGETS cohort-coordinator cohort-agent cohortctl
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

set(_cohort_exported cohort_proto cohort_common cohort_comm cohort_agent)
if(COHORT_WITH_NCCL)
  list(APPEND _cohort_exported cohort_nccl)
endif()
set_target_properties(cohort_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(cohort_common PROPERTIES EXPORT_NAME common)
set_target_properties(cohort_comm PROPERTIES EXPORT_NAME comm)
set_target_properties(cohort_agent PROPERTIES EXPORT_NAME agent)
if(COHORT_WITH_NCCL)
  set_target_properties(cohort_nccl PROPERTIES EXPORT_NAME nccl)
endif()
install(TARGETS ${_cohort_exported} EXPORT cohortTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)

# Headers of the exported libraries (not the CLI11 flag headers, the Prometheus endpoint or the
# coordinator's, which no engine links).
install(FILES
          common/clock.h common/grpc_status.h common/layout.h common/layout_proto.h
          common/logging.h common/parallel_config.h common/rank_generator.h
          common/timer_queue.h common/transport_security.h
          ${CMAKE_BINARY_DIR}/generated/common/cohort_config.h
        DESTINATION ${COHORT_INSTALL_INCLUDEDIR}/common COMPONENT development)
install(FILES agent/agent.h agent/agent_health.h agent/agent_health_server.h
              agent/coordinator_client.h agent/generation_runner.h agent/group.h
              agent/identity.h agent/parallel_state.h agent/session.h agent/session_state.h
        DESTINATION ${COHORT_INSTALL_INCLUDEDIR}/agent COMPONENT development)
install(DIRECTORY agent/comm/ DESTINATION ${COHORT_INSTALL_INCLUDEDIR}/agent/comm
        COMPONENT development FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${CMAKE_BINARY_DIR}/generated/cohort/
        DESTINATION ${COHORT_INSTALL_INCLUDEDIR}/cohort COMPONENT development
        FILES_MATCHING PATTERN "*.pb.h")
install(DIRECTORY proto/cohort/ DESTINATION ${COHORT_INSTALL_INCLUDEDIR}/cohort
        COMPONENT development FILES_MATCHING PATTERN "*.proto")

install(EXPORT cohortTargets NAMESPACE cohort:: DESTINATION ${COHORT_INSTALL_CMAKEDIR}
        COMPONENT development)
configure_package_config_file(cmake/cohortConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cohortConfig.cmake INSTALL_DESTINATION ${COHORT_INSTALL_CMAKEDIR})
# 0.x: only the same minor version is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cohortConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cohortConfig.cmake ${CMAKE_BINARY_DIR}/cohortConfigVersion.cmake
        DESTINATION ${COHORT_INSTALL_CMAKEDIR} COMPONENT development)

# make package: one .deb (cpack -G DEB) with the binaries and the development files, depending on
# the Debian packages the build used.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cohort)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "cohort maintainers <cohort@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Coordinator, agent and CLI that form the NCCL/Gloo communicators of inference pools")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
# The -dev packages: the exported libraries are static and need their headers and libraries; the
# binaries' shared libraries come with them (yaml-cpp's runtime for cohortctl on its own).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libgrpc++-dev, libprotobuf-dev, libabsl-dev, libgloo-dev, libspdlog-dev, libfmt-dev, "
    "libyaml-cpp0.7, prometheus-cpp-dev")
string(CONCAT CPACK_DEBIAN_PACKAGE_DEPENDS ${CPACK_DEBIAN_PACKAGE_DEPENDS})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
