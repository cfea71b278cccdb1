#pragma once
// Logger: leveled lines on stderr (or a sink given by tests), one line per call:
//   2026-11-26T22:10:00.123Z INFO component: message
// Thread-safe (a mutex around the write): logging is off the event path. The composition root
// owns one Logger and hands a pointer to the components that log; there is no global logger.
//
// RateLimitedLog: for warnings that can happen per event (a bad message, a failing write). One
// instance per call site, owned by the component; at most `per_second` lines are written per
// one-second window, the rest are counted and the next line written says "(M suppressed)".
// Thread-safe.
#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace vigie::daemon {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error" (also "warning"). False if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* level);
const char* LogLevelName(LogLevel level);  // "DEBUG", "INFO", "WARN", "ERROR"

class Logger {
 public:
  // Where lines go; each call gets one full line with its trailing '\n'.
  using Sink = std::function<void(std::string_view line)>;

  Logger();                     // stderr, level info
  explicit Logger(Sink sink);   // tests: capture lines
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void set_level(LogLevel level) { level_.store(static_cast<int>(level), std::memory_order_relaxed); }
  LogLevel level() const { return static_cast<LogLevel>(level_.load(std::memory_order_relaxed)); }
  bool Enabled(LogLevel level) const {
    return static_cast<int>(level) >= level_.load(std::memory_order_relaxed);
  }

  void Log(LogLevel level, std::string_view component, std::string_view message);
  void Logf(LogLevel level, std::string_view component, const char* fmt, ...)
      __attribute__((format(printf, 4, 5)));
  void VLogf(LogLevel level, std::string_view component, const char* fmt, va_list ap);

  void Debug(std::string_view component, std::string_view m) { Log(LogLevel::kDebug, component, m); }
  void Info(std::string_view component, std::string_view m) { Log(LogLevel::kInfo, component, m); }
  void Warn(std::string_view component, std::string_view m) { Log(LogLevel::kWarn, component, m); }
  void Error(std::string_view component, std::string_view m) { Log(LogLevel::kError, component, m); }

  // "2026-11-26T22:10:00.123Z" for a Unix time in ms (also used by other daemon parts).
  static std::string FormatUtcMs(int64_t unix_ms);

 private:
  std::atomic<int> level_{static_cast<int>(LogLevel::kInfo)};
  std::mutex mu_;
  Sink sink_;  // empty: stderr
};

class RateLimitedLog {
 public:
  // `logger` must outlive this object. per_second >= 1.
  RateLimitedLog(Logger* logger, int per_second);

  // Writes the line if the budget of the current second allows it, else counts it as
  // suppressed. Returns true if written.
  bool Log(LogLevel level, std::string_view component, std::string_view message);
  bool Logf(LogLevel level, std::string_view component, const char* fmt, ...)
      __attribute__((format(printf, 4, 5)));
  // Same with an explicit steady time in ms (tests).
  bool LogAt(int64_t now_ms, LogLevel level, std::string_view component, std::string_view message);

  uint64_t suppressed_total() const { return suppressed_total_.load(std::memory_order_relaxed); }

 private:
  Logger* logger_;
  int per_second_;
  std::mutex mu_;
  int64_t window_start_ms_ = INT64_MIN;
  int in_window_ = 0;
  uint64_t suppressed_ = 0;  // not yet reported
  std::atomic<uint64_t> suppressed_total_{0};
};

}  // namespace vigie::daemon
