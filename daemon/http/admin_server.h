#pragma once
// AdminServer: the admin and monitoring HTTP endpoint (INTERFACES.md "HTTP"), on cpp-httplib.
// It knows nothing of the rest of the daemon: the composition root gives it callbacks.
//
//   GET  /metrics    200 text/plain; version=0.0.4            handlers.metrics()
//   GET  /healthz    200 "ok"
//   GET  /readyz     200 "ready" | 503 "not ready: <reason>"   handlers.ready(&reason)
//   GET  /rules      200 application/json                     handlers.rules_json()
//   POST /-/reload   200 | 400 with the body                  handlers.reload()
//   other paths 404; a known path with another method 405 (with an Allow header). HEAD works
//   wherever GET does. A missing callback answers 503 "not available".
//
// Threading: the server runs its own threads (an accept thread and a small worker pool);
// callbacks run on those threads, possibly concurrently, and must be thread-safe.
// Lifecycle: Start() once, Stop() (also done by the destructor) returns when every thread has
// exited. Binds 127.0.0.1 unless told otherwise.
#include <functional>
#include <memory>
#include <string>

namespace vigie::daemon {

struct ReloadResult {
  bool ok = false;
  std::string body;  // a summary (ok) or the errors, one per line (not ok)
};

struct AdminHandlers {
  std::function<std::string()> metrics;            // Prometheus text exposition
  std::function<bool(std::string* reason)> ready;  // false + reason while not ready
  std::function<std::string()> rules_json;         // the loaded rules as JSON
  std::function<ReloadResult()> reload;            // reload the rules now
};

struct AdminServerOptions {
  std::string host = "127.0.0.1";  // loopback unless configured otherwise
  int port = 9464;                 // 0: any free port (see AdminServer::port())
  int threads = 2;                 // worker threads answering requests
};

class AdminServer {
 public:
  AdminServer(AdminServerOptions options, AdminHandlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving. False with *error if the address cannot be bound.
  bool Start(std::string* error);
  void Stop();
  // The bound port (useful with port 0); 0 before Start.
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace vigie::daemon
