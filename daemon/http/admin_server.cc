#include "daemon/http/admin_server.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <httplib.h>

namespace vigie::daemon {

struct AdminServer::Impl {
  AdminServerOptions options;
  AdminHandlers handlers;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  bool started = false;

  httplib::Server::HandlerResponse Route(const httplib::Request& req, httplib::Response& res);
};

namespace {

constexpr const char* kText = "text/plain; charset=utf-8";

void Reply(httplib::Response& res, int status, const std::string& body,
           const char* type = kText) {
  res.status = status;
  res.set_content(body, type);
}

}  // namespace

httplib::Server::HandlerResponse AdminServer::Impl::Route(const httplib::Request& req,
                                                          httplib::Response& res) {
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const bool post = req.method == "POST";
  const char* allow = nullptr;

  if (path == "/metrics" || path == "/healthz" || path == "/readyz" || path == "/rules") {
    if (!get) {
      allow = "GET, HEAD";
    } else if (path == "/healthz") {
      Reply(res, 200, "ok\n");
    } else if (path == "/metrics") {
      if (handlers.metrics) Reply(res, 200, handlers.metrics(), "text/plain; version=0.0.4; charset=utf-8");
      else Reply(res, 503, "not available\n");
    } else if (path == "/readyz") {
      std::string reason;
      if (!handlers.ready) Reply(res, 503, "not ready: no readiness check\n");
      else if (handlers.ready(&reason)) Reply(res, 200, "ready\n");
      else Reply(res, 503, "not ready: " + reason + "\n");
    } else {
      if (handlers.rules_json) Reply(res, 200, handlers.rules_json(), "application/json");
      else Reply(res, 503, "not available\n");
    }
  } else if (path == "/-/reload") {
    if (!post) {
      allow = "POST";
    } else if (!handlers.reload) {
      Reply(res, 503, "not available\n");
    } else {
      ReloadResult r = handlers.reload();
      if (!r.body.empty() && r.body.back() != '\n') r.body += '\n';
      Reply(res, r.ok ? 200 : 400, r.body);
    }
  } else {
    Reply(res, 404, "not found: try /metrics, /healthz, /readyz, /rules, POST /-/reload\n");
  }
  if (allow != nullptr) {
    res.set_header("Allow", allow);
    Reply(res, 405, std::string("method not allowed: use ") + allow + "\n");
  }
  return httplib::Server::HandlerResponse::Handled;
}

AdminServer::AdminServer(AdminServerOptions options, AdminHandlers handlers)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handlers = std::move(handlers);
}

AdminServer::~AdminServer() { Stop(); }

bool AdminServer::Start(std::string* error) {
  Impl& im = *impl_;
  if (im.started) {
    *error = "admin server already started";
    return false;
  }
  const int threads = im.options.threads < 1 ? 1 : im.options.threads;
  im.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  im.server.set_read_timeout(5, 0);
  im.server.set_write_timeout(5, 0);
  im.server.set_keep_alive_max_count(100);
  // httplib's default also sets SO_REUSEPORT, which would let a second daemon bind the same
  // port silently; SO_REUSEADDR alone still allows a quick restart.
  im.server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
  });
  im.server.set_pre_routing_handler(
      [&im](const httplib::Request& req, httplib::Response& res) { return im.Route(req, res); });

  int port = 0;
  errno = 0;
  if (im.options.port == 0) {
    port = im.server.bind_to_any_port(im.options.host);
    if (port < 0) port = 0;
  } else if (im.server.bind_to_port(im.options.host, im.options.port)) {
    port = im.options.port;
  }
  if (port <= 0) {
    int err = errno;
    *error = "cannot listen on " + im.options.host + ":" + std::to_string(im.options.port);
    if (err != 0) *error += std::string(": ") + strerror(err);
    return false;
  }
  port_ = port;
  im.started = true;
  im.thread = std::thread([&im] {
    im.server.listen_after_bind();
    im.listen_returned.store(true);
  });
  // Stop() only works once the server loop runs: wait for it (briefly) here.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!im.server.is_running() && !im.listen_returned.load() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void AdminServer::Stop() {
  Impl& im = *impl_;
  if (!im.started) return;
  while (!im.listen_returned.load()) {
    im.server.stop();
    if (im.listen_returned.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (im.thread.joinable()) im.thread.join();
  im.started = false;
}

}  // namespace vigie::daemon
