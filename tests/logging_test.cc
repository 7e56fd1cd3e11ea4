// The libraries' named logger: created on first use, or the host's own; SetupLogging (the
// binaries) gives it the default logger's sink and level. spdlog's default logger, which belongs
// to the process, is never replaced by it.
#include "common/logging.h"

#include <memory>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace cohort {
namespace {

using ::testing::HasSubstr;

// An engine's own default logger, writing to `lines`.
std::shared_ptr<spdlog::logger> EngineDefaultLogger(std::ostringstream& lines) {
  auto engine = std::make_shared<spdlog::logger>(
      "engine", std::make_shared<spdlog::sinks::ostream_sink_mt>(lines));
  spdlog::set_default_logger(engine);
  return engine;
}

TEST(LoggingTest, Log_CreatesTheCohortLoggerOnFirstUse) {
  std::ostringstream engine_lines;
  std::shared_ptr<spdlog::logger> engine = EngineDefaultLogger(engine_lines);
  spdlog::drop(kLibraryLoggerName);

  std::shared_ptr<spdlog::logger> logger = Log();

  ASSERT_NE(logger, nullptr);
  EXPECT_EQ(logger->name(), kLibraryLoggerName);
  EXPECT_EQ(spdlog::get(kLibraryLoggerName), logger);
  EXPECT_EQ(Log(), logger) << "one logger, created once";
  EXPECT_EQ(spdlog::default_logger(), engine);
  spdlog::drop(kLibraryLoggerName);
}

TEST(LoggingTest, Log_UsesTheHostsCohortLogger) {
  std::ostringstream engine_lines;
  std::shared_ptr<spdlog::logger> engine = EngineDefaultLogger(engine_lines);
  std::ostringstream cohort_lines;
  spdlog::drop(kLibraryLoggerName);
  auto cohort = std::make_shared<spdlog::logger>(
      kLibraryLoggerName, std::make_shared<spdlog::sinks::ostream_sink_mt>(cohort_lines));
  spdlog::register_logger(cohort);

  Log()->warn("from the library");
  cohort->flush();
  engine->flush();

  EXPECT_THAT(cohort_lines.str(), HasSubstr("from the library"));
  EXPECT_EQ(engine_lines.str(), "");
  spdlog::drop(kLibraryLoggerName);
}

TEST(LoggingTest, SetupLogging_LibraryLoggerSharesTheBinarysSinkAndLevel) {
  ASSERT_TRUE(SetupLogging("agent", "warn").ok());

  EXPECT_EQ(spdlog::default_logger()->name(), "agent");
  ASSERT_NE(spdlog::get(kLibraryLoggerName), nullptr);
  EXPECT_EQ(Log()->level(), spdlog::level::warn);
  EXPECT_EQ(Log()->sinks(), spdlog::default_logger()->sinks());
  spdlog::drop(kLibraryLoggerName);
}

TEST(LoggingTest, SetupLogging_UnknownLevel_InvalidArgument) {
  EXPECT_EQ(SetupLogging("agent", "loud").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohort
