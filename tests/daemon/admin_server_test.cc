#include <catch2/catch.hpp>

#include <atomic>

#include <httplib.h>

#include "daemon/http/admin_server.h"

using namespace vigie::daemon;

TEST_CASE("http: admin routes on a free loopback port") {
  std::atomic<bool> ready{false};
  std::atomic<int> reloads{0};
  AdminHandlers h;
  h.metrics = [] { return std::string("# HELP x X.\n# TYPE x gauge\nx 1\n"); };
  h.ready = [&](std::string* reason) {
    if (!ready.load()) *reason = "recovering state";
    return ready.load();
  };
  h.rules_json = [] { return std::string("[{\"name\":\"r1\"}]"); };
  h.reload = [&] {
    int n = ++reloads;
    return n == 1 ? ReloadResult{true, "ok: 3 rules in 2 files"}
                  : ReloadResult{false, "r.yaml:1:1: bad"};
  };
  AdminServerOptions opts;
  opts.port = 0;
  AdminServer server(opts, h);
  std::string err;
  REQUIRE(server.Start(&err));
  REQUIRE(server.port() > 0);

  httplib::Client cli("127.0.0.1", server.port());
  cli.set_read_timeout(5, 0);

  auto r = cli.Get("/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok\n");

  r = cli.Get("/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r->body == "# HELP x X.\n# TYPE x gauge\nx 1\n");

  r = cli.Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "not ready: recovering state\n");
  ready = true;
  r = cli.Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ready\n");

  r = cli.Get("/rules");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  CHECK(r->body == "[{\"name\":\"r1\"}]");

  r = cli.Post("/-/reload", "", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok: 3 rules in 2 files\n");
  r = cli.Post("/-/reload", "", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body == "r.yaml:1:1: bad\n");

  r = cli.Get("/-/reload");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->get_header_value("Allow") == "POST");
  r = cli.Post("/metrics", "", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->get_header_value("Allow") == "GET, HEAD");
  r = cli.Delete("/rules");
  REQUIRE(r);
  CHECK(r->status == 405);

  r = cli.Get("/nope");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->body.rfind("not found", 0) == 0);
  CHECK(reloads == 2);

  server.Stop();
  httplib::Client after("127.0.0.1", server.port());
  after.set_connection_timeout(1, 0);
  CHECK_FALSE(after.Get("/healthz"));  // nothing listens any more
}

TEST_CASE("http: missing callbacks answer 503; a taken port is a clear error") {
  AdminServerOptions opts;
  opts.port = 0;
  AdminServer a(opts, AdminHandlers{});
  std::string err;
  REQUIRE(a.Start(&err));
  httplib::Client cli("127.0.0.1", a.port());
  auto r = cli.Get("/metrics");
  REQUIRE(r);
  CHECK(r->status == 503);
  r = cli.Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 503);

  AdminServerOptions same;
  same.port = a.port();
  AdminServer b(same, AdminHandlers{});
  CHECK_FALSE(b.Start(&err));
  CHECK(err.rfind("cannot listen on 127.0.0.1:" + std::to_string(a.port()), 0) == 0);
}

TEST_CASE("http: stop right after start does not hang") {
  for (int i = 0; i < 20; ++i) {
    AdminServerOptions opts;
    opts.port = 0;
    AdminServer s(opts, AdminHandlers{});
    std::string err;
    REQUIRE(s.Start(&err));
    s.Stop();
  }
}
