#include "daemon/util/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace vigie::daemon {

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug") *level = LogLevel::kDebug;
  else if (text == "info") *level = LogLevel::kInfo;
  else if (text == "warn" || text == "warning") *level = LogLevel::kWarn;
  else if (text == "error") *level = LogLevel::kError;
  else return false;
  return true;
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}

Logger::Logger() = default;
Logger::Logger(Sink sink) : sink_(std::move(sink)) {}

std::string Logger::FormatUtcMs(int64_t unix_ms) {
  int64_t secs = unix_ms / 1000;
  int64_t ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[96];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void Logger::Log(LogLevel level, std::string_view component, std::string_view message) {
  if (!Enabled(level)) return;
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string line = FormatUtcMs(now_ms);
  line += ' ';
  line += LogLevelName(level);
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  if (line.back() != '\n') line += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_) {
    sink_(line);
  } else {
    fwrite(line.data(), 1, line.size(), stderr);
    fflush(stderr);
  }
}

void Logger::VLogf(LogLevel level, std::string_view component, const char* fmt, va_list ap) {
  if (!Enabled(level)) return;
  char buf[512];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    Log(level, component, std::string_view(buf, n));
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(big.data(), big.size(), fmt, ap);
  big.resize(n);
  Log(level, component, big);
}

void Logger::Logf(LogLevel level, std::string_view component, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VLogf(level, component, fmt, ap);
  va_end(ap);
}

RateLimitedLog::RateLimitedLog(Logger* logger, int per_second)
    : logger_(logger), per_second_(per_second < 1 ? 1 : per_second) {}

bool RateLimitedLog::Log(LogLevel level, std::string_view component, std::string_view message) {
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  return LogAt(now_ms, level, component, message);
}

bool RateLimitedLog::LogAt(int64_t now_ms, LogLevel level, std::string_view component,
                           std::string_view message) {
  if (!logger_->Enabled(level)) return false;
  uint64_t report = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (window_start_ms_ == INT64_MIN || now_ms - window_start_ms_ >= 1000) {
      window_start_ms_ = now_ms;
      in_window_ = 0;
    }
    if (in_window_ >= per_second_) {
      ++suppressed_;
      suppressed_total_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    ++in_window_;
    report = suppressed_;
    suppressed_ = 0;
  }
  if (report == 0) {
    logger_->Log(level, component, message);
  } else {
    std::string m(message);
    m += " (";
    m += std::to_string(report);
    m += " suppressed)";
    logger_->Log(level, component, m);
  }
  return true;
}

bool RateLimitedLog::Logf(LogLevel level, std::string_view component, const char* fmt, ...) {
  if (!logger_->Enabled(level)) return false;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1;
  return Log(level, component, std::string_view(buf, len));
}

}  // namespace vigie::daemon
