#include "agent/jobs.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include <unistd.h>

#include <openssl/evp.h>

#include "agent/backoff.hpp"
#include "agent/detect.hpp"
#include "engine/log.hpp"

namespace balctl::agent {

namespace fs = std::filesystem;
using json = nlohmann::json;

// -- parsing and reports -------------------------------------------------------

std::optional<jobs_reply> parse_jobs_reply(const std::string& body, std::string* error) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "jobs answer: not a JSON object";
    return std::nullopt;
  }
  jobs_reply r;
  if (auto p = j.find("poll_s"); p != j.end() && p->is_number_integer()) {
    r.poll_s = static_cast<int>(std::clamp<std::int64_t>(p->get<std::int64_t>(), 0, 3600));
  }
  auto list = j.find("jobs");
  if (list == j.end() || !list->is_array()) {
    *error = "jobs answer: jobs: must be an array";
    return std::nullopt;
  }
  for (const auto& e : *list) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_string() ||
        e["id"].get<std::string>().empty()) {
      continue;
    }
    job jb;
    jb.id = e["id"].get<std::string>();
    if (auto k = e.find("kind"); k != e.end() && k->is_string()) {
      jb.kind = k->get<std::string>();
    }
    if (auto c = e.find("created_ms"); c != e.end() && c->is_number_integer()) {
      jb.created_ms = c->get<std::int64_t>();
    }
    if (auto t = e.find("timeout_s"); t != e.end() && t->is_number_integer()) {
      // At most a week: a bigger number is a mistake, not a plan.
      jb.timeout_s = static_cast<int>(std::clamp<std::int64_t>(t->get<std::int64_t>(), 1, 7 * 86400));
    }
    if (auto p = e.find("params"); p != e.end() && p->is_object()) {
      jb.params = *p;
    }
    r.jobs.push_back(std::move(jb));
  }
  return r;
}

std::string job_report::to_json() const {
  json j{{"status", status}};
  if (exit_code) {
    j["exit_code"] = *exit_code;
  }
  if (!output.empty()) {
    j["output"] = output;
  }
  if (!error.empty()) {
    j["error"] = error;
  }
  // Output is a process's bytes: not always UTF-8. Replace, never throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string tail(std::string text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    text.erase(0, text.size() - max_bytes);
  }
  return text;
}

bool safe_name(const std::string& s) {
  if (s.empty() || s.size() > 128 || s.front() == '.') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

// -- job_control ----------------------------------------------------------------

void job_control::cancel() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

std::int64_t job_control::remaining_ms() const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    deadline_ - std::chrono::steady_clock::now()).count();
  return std::max<std::int64_t>(left, 0);
}

bool job_control::wait(std::int64_t ms) {
  auto until = std::min(deadline_, std::chrono::steady_clock::now() + std::chrono::milliseconds(ms));
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_until(lk, until, [&] { return cancelled_.load(); });
  return !cancelled_ && std::chrono::steady_clock::now() < deadline_;
}

namespace {

std::string under_root(const std::string& root, const std::string& path) {
  std::string r = root;
  while (!r.empty() && r.back() == '/') {
    r.pop_back();
  }
  return r + path;
}

job_report failed(std::string error, std::string output = {}) {
  job_report r;
  r.status = "failed";
  r.error = std::move(error);
  r.output = std::move(output);
  return r;
}

/// A program's run as a report (the tail of its stdout and stderr).
job_report from_command(const command_result& c, const std::string& what) {
  job_report r;
  r.output = c.out;
  if (!c.ran) {
    return failed(what + ": could not be started (missing or not executable)");
  }
  if (c.timed_out) {
    r.error = "timed out";
    return r;
  }
  if (c.cancelled) {
    r.error = "cancelled";
    return r;
  }
  if (c.exit_code < 0) {
    r.error = what + ": killed by a signal";
    return r;
  }
  r.exit_code = c.exit_code;
  if (c.exit_code != 0) {
    r.error = what + ": exit code " + std::to_string(c.exit_code);
    return r;
  }
  r.status = "succeeded";
  return r;
}

command_spec spec_for(const job_env& env, job_control& ctl, std::vector<std::string> argv,
                      std::vector<std::string> extra_env = {}) {
  command_spec s;
  s.argv = std::move(argv);
  s.timeout_ms = static_cast<int>(std::min<std::int64_t>(ctl.remaining_ms(), INT32_MAX));
  s.max_bytes = env.output_max_bytes;
  s.keep_tail = true;
  s.with_stderr = true;
  s.env = std::move(extra_env);
  s.env.push_back("BALCTL_ROOT=" + env.root);
  s.cancel = &ctl.flag();
  return s;
}

std::string param_string(const job& j, const char* name) {
  auto p = j.params.find(name);
  return p != j.params.end() && p->is_string() ? p->get<std::string>() : std::string();
}

// -- command and hook --------------------------------------------------------------

job_report run_command_job(const job& j, const job_env& env, job_control& ctl) {
  auto cmd = param_string(j, "command");
  if (cmd.empty()) {
    return failed("params.command: required, a non-empty string");
  }
  return from_command(run_command(spec_for(env, ctl, {"/bin/sh", "-c", cmd})), "command");
}

job_report run_hook_job(const job& j, const job_env& env, job_control& ctl) {
  auto hook = under_root(env.root, "/etc/balctl/hooks/post-failover");
  std::error_code ec;
  if (!fs::is_regular_file(hook, ec) || ::access(hook.c_str(), X_OK) != 0) {
    job_report r;
    r.status = "succeeded";
    r.output = "no hook";
    return r;
  }
  return from_command(
    run_command(spec_for(env, ctl, {hook},
                         {"BALCTL_POOL=" + param_string(j, "pool"),
                          "BALCTL_ACCOUNT=" + param_string(j, "account"),
                          "BALCTL_DOMAIN=" + param_string(j, "domain")})),
    "post-failover hook");
}

// -- replication --------------------------------------------------------------------

struct sha256_stream {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  sha256_stream() { EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr); }
  void add(std::string_view d) { EVP_DigestUpdate(ctx.get(), d.data(), d.size()); }
  std::string hex() {
    unsigned char md[32];
    unsigned int n = 32;
    EVP_DigestFinal_ex(ctx.get(), md, &n);
    static const char digits[] = "0123456789abcdef";
    std::string out(64, '0');
    for (int i = 0; i < 32; ++i) {
      out[2 * i] = digits[md[i] >> 4];
      out[2 * i + 1] = digits[md[i] & 0x0f];
    }
    return out;
  }
};

struct chunk_info {
  std::int64_t index = 0;
  std::int64_t size = 0;
  std::string sha256;
};

struct manifest {
  std::int64_t size = 0;
  std::int64_t chunk_size = 0;
  std::string sha256;
  std::vector<chunk_info> chunks;
  std::string to_json() const {
    json c = json::array();
    for (const auto& ch : chunks) {
      c.push_back({{"index", ch.index}, {"size", ch.size}, {"sha256", ch.sha256}});
    }
    return json{{"size", size}, {"chunk_size", chunk_size}, {"sha256", sha256}, {"chunks", c}}
      .dump();
  }
};

/// Reads bytes [offset, offset + n) of a file; "" on error.
bool read_range(const std::string& path, std::int64_t offset, std::int64_t n, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return false;
  }
  out.assign(static_cast<std::size_t>(n), '\0');
  in.seekg(offset);
  in.read(out.data(), n);
  return in.gcount() == n;
}

/// Hashes the package chunk by chunk (one chunk in memory at a time).
std::optional<manifest> hash_package(const std::string& path, std::int64_t chunk_size,
                                     job_control& ctl, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return std::nullopt;
  }
  manifest m;
  m.chunk_size = chunk_size;
  sha256_stream whole;
  std::string buf(static_cast<std::size_t>(chunk_size), '\0');
  for (std::int64_t index = 0;; ++index) {
    if (ctl.cancelled()) {
      *error = "cancelled";
      return std::nullopt;
    }
    in.read(buf.data(), chunk_size);
    auto n = in.gcount();
    if (n <= 0) {
      break;
    }
    std::string_view piece(buf.data(), static_cast<std::size_t>(n));
    whole.add(piece);
    m.chunks.push_back({index, n, agent_auth::sha256_hex(piece)});
    m.size += n;
    if (n < chunk_size) {
      break;
    }
  }
  if (in.bad()) {
    *error = "read error in " + path;
    return std::nullopt;
  }
  m.sha256 = whole.hex();
  return m;
}

bool transient(const cli::http_reply& r) {
  return r.what != cli::http_reply::kind::answered || r.status == 429 || r.status >= 500;
}

bool ok_status(const cli::http_reply& r) {
  return r.what == cli::http_reply::kind::answered && r.status >= 200 && r.status < 300;
}

/// Retries and waits of one replication job.
struct retrier {
  const job_env& env;
  job_control& ctl;
  backoff delays{env.retry_base_ms, env.retry_max_ms};
  std::mt19937_64 rng{std::random_device{}()};
  /// Waits the next back-off; false when the job must end (timeout, cancel).
  bool again() {
    auto d = delays.next([this](std::uint64_t n) { return n == 0 ? 0 : rng() % n; });
    return ctl.wait(d);
  }
  std::string why_stopped() const { return ctl.cancelled() ? "cancelled" : "timed out"; }
};

/// params.run and params.account, each one safe path component; else why not.
std::optional<job_report> check_names(const std::string& run, const std::string& account) {
  if (!safe_name(run)) {
    return failed("params.run: required, 1-128 of [A-Za-z0-9._-]");
  }
  if (!safe_name(account)) {
    return failed("params.account: required, 1-128 of [A-Za-z0-9._-]");
  }
  return std::nullopt;
}

job_report replicate_package(const job& j, const job_env& env, job_control& ctl) {
  auto run = param_string(j, "run");
  auto account = param_string(j, "account");
  if (auto bad = check_names(run, account)) {
    return *bad;
  }
  auto cs = j.params.find("chunk_size");
  if (cs == j.params.end() || !cs->is_number_integer() || cs->get<std::int64_t>() <= 0 ||
      cs->get<std::int64_t>() > env.max_chunk_size) {
    return failed("params.chunk_size: required, an integer from 1 to " +
                  std::to_string(env.max_chunk_size));
  }
  const auto chunk_size = cs->get<std::int64_t>();
  const std::string run_dir = env.work_dir + "/replication/" + run;
  const std::string file_name = "cpmove-" + account + ".tar.gz";
  const std::string package = run_dir + "/" + file_name;
  std::string log;
  std::error_code ec;
  if (!fs::is_regular_file(package, ec)) {
    // pkgacct writes into a staging directory; the package moves into the
    // run directory only once pkgacct succeeded, so a run interrupted
    // half-way never resumes from half a package.
    const std::string staging = run_dir + "/staging";
    fs::remove_all(staging, ec);
    fs::create_directories(staging, ec);
    if (ec) {
      return failed("cannot create " + staging + ": " + ec.message());
    }
    auto c = run_command(spec_for(
      env, ctl, {under_root(env.root, "/usr/local/cpanel/scripts/pkgacct"), account, staging}));
    auto r = from_command(c, "pkgacct");
    if (r.status != "succeeded") {
      fs::remove_all(staging, ec);
      r.output = tail(r.output, env.output_max_bytes);
      return r;
    }
    log = c.out;
    fs::rename(staging + "/" + file_name, package, ec);
    if (ec) {
      fs::remove_all(staging, ec);
      return failed("pkgacct did not write " + file_name, tail(log, env.output_max_bytes));
    }
    fs::remove_all(staging, ec);
  } else {
    log += "resuming: the package is already in " + run_dir + "\n";
  }
  std::string err;
  auto m = hash_package(package, chunk_size, ctl, &err);
  if (!m) {
    return failed(err, tail(log, env.output_max_bytes));
  }
  log += "package " + std::to_string(m->size) + " bytes, " + std::to_string(m->chunks.size()) +
         " chunks, sha256 " + m->sha256 + "\n";
  const std::string base = "/v1/agent/replication/" + run;
  const auto body = m->to_json();
  retrier retry{env, ctl};
  std::int64_t uploaded = 0;
  for (;;) {
    // The manifest: which chunks the engine still needs, and where to.
    auto mr = env.api->call("POST", base + "/manifest", body, &ctl.flag());
    if (!ok_status(mr)) {
      if (!transient(mr)) {
        return failed("manifest refused: " + describe(mr), tail(log, env.output_max_bytes));
      }
      log::warn("agent_replication_retry", {{"job", j.id}, {"step", "manifest"},
                                            {"error", describe(mr)}});
      if (!retry.again()) {
        return failed(retry.why_stopped(), tail(log, env.output_max_bytes));
      }
      continue;
    }
    auto answer = json::parse(mr.body, nullptr, false);
    if (answer.is_discarded() || !answer.is_object() || !answer.contains("upload") ||
        !answer["upload"].is_array()) {
      return failed("manifest answer: upload: must be an array", tail(log, env.output_max_bytes));
    }
    bool renew = false;
    for (const auto& u : answer["upload"]) {
      if (!u.is_object() || !u.contains("index") || !u["index"].is_number_integer() ||
          !u.contains("url") || !u["url"].is_string()) {
        return failed("manifest answer: upload entries need index and url",
                      tail(log, env.output_max_bytes));
      }
      auto index = u["index"].get<std::int64_t>();
      if (index < 0 || index >= static_cast<std::int64_t>(m->chunks.size())) {
        return failed("manifest answer: upload index " + std::to_string(index) +
                        " is not a chunk of the package",
                      tail(log, env.output_max_bytes));
      }
      const auto& ch = m->chunks[static_cast<std::size_t>(index)];
      std::string bytes;
      if (!read_range(package, index * chunk_size, ch.size, bytes) ||
          agent_auth::sha256_hex(bytes) != ch.sha256) {
        return failed("chunk " + std::to_string(index) + ": the package changed on disk",
                      tail(log, env.output_max_bytes));
      }
      const auto url = u["url"].get<std::string>();
      for (;;) {
        auto put = env.api->fetch("PUT", url, &bytes, &ctl.flag());
        if (put.what == cli::http_reply::kind::answered && put.status == 403) {
          // The presigned URL expired: a new manifest brings fresh ones.
          log += "chunk " + std::to_string(index) + ": upload URL refused (403), renewing\n";
          renew = true;
          break;
        }
        cli::http_reply rep;
        if (ok_status(put)) {
          rep = env.api->call("POST", base + "/chunks/" + std::to_string(index),
                              json{{"sha256", ch.sha256}}.dump(), &ctl.flag());
          if (ok_status(rep)) {
            ++uploaded;
            retry.delays.reset();
            break;
          }
          if (rep.what == cli::http_reply::kind::answered &&
              (rep.status == 404 || rep.status == 409)) {
            ctl.cancel();
            return failed("the engine stopped the run: " + describe(rep),
                          tail(log, env.output_max_bytes));
          }
        }
        const auto& bad = ok_status(put) ? rep : put;
        log::warn("agent_replication_retry",
                  {{"job", j.id}, {"step", ok_status(put) ? "chunk report" : "upload"},
                   {"chunk", std::to_string(index)}, {"error", describe(bad)}});
        if (!retry.again()) {
          return failed(retry.why_stopped(), tail(log, env.output_max_bytes));
        }
      }
      if (renew) {
        break;
      }
    }
    if (!renew) {
      break;
    }
    if (!retry.again()) {
      return failed(retry.why_stopped(), tail(log, env.output_max_bytes));
    }
  }
  log += "uploaded " + std::to_string(uploaded) + " of " + std::to_string(m->chunks.size()) +
         " chunks\n";
  job_report r;
  r.status = "succeeded";
  r.exit_code = 0;
  r.output = tail(log, env.output_max_bytes);
  return r;
}

/// Removes a directory when it goes out of scope.
struct dir_guard {
  std::string path;
  ~dir_guard() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

job_report replicate_restore(const job& j, const job_env& env, job_control& ctl) {
  auto run = param_string(j, "run");
  auto account = param_string(j, "account");
  auto want_sha = param_string(j, "sha256");
  if (auto bad = check_names(run, account)) {
    return *bad;
  }
  if (want_sha.size() != 64) {
    return failed("params.sha256: required, 64 hex characters");
  }
  auto sz = j.params.find("size");
  if (sz == j.params.end() || !sz->is_number_integer() || sz->get<std::int64_t>() < 0) {
    return failed("params.size: required, an integer >= 0");
  }
  auto list = j.params.find("chunks");
  if (list == j.params.end() || !list->is_array()) {
    return failed("params.chunks: required, an array");
  }
  struct remote_chunk {
    chunk_info info;
    std::string url, delete_url;
  };
  std::vector<remote_chunk> chunks;
  std::int64_t total = 0;
  for (const auto& c : *list) {
    if (!c.is_object() || !c.contains("index") || !c["index"].is_number_integer() ||
        !c.contains("size") || !c["size"].is_number_integer() || !c.contains("sha256") ||
        !c["sha256"].is_string() || !c.contains("url") || !c["url"].is_string()) {
      return failed("params.chunks: each needs index, size, sha256 and url");
    }
    remote_chunk rc;
    rc.info = {c["index"].get<std::int64_t>(), c["size"].get<std::int64_t>(),
               c["sha256"].get<std::string>()};
    rc.url = c["url"].get<std::string>();
    if (auto d = c.find("delete_url"); d != c.end() && d->is_string()) {
      rc.delete_url = d->get<std::string>();
    }
    if (rc.info.size < 0 || rc.info.size > env.max_chunk_size) {
      return failed("params.chunks: chunk " + std::to_string(rc.info.index) + " size out of range");
    }
    total += rc.info.size;
    chunks.push_back(std::move(rc));
  }
  std::sort(chunks.begin(), chunks.end(),
            [](const remote_chunk& a, const remote_chunk& b) { return a.info.index < b.info.index; });
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].info.index != static_cast<std::int64_t>(i)) {
      return failed("params.chunks: indexes must be 0 to " + std::to_string(chunks.size() - 1) +
                    ", each once");
    }
  }
  if (total != sz->get<std::int64_t>()) {
    return failed("params.chunks: sizes add up to " + std::to_string(total) + ", not size " +
                  std::to_string(sz->get<std::int64_t>()));
  }
  const dir_guard restore{env.work_dir + "/replication/" + run + "/restore"};
  std::error_code ec;
  fs::remove_all(restore.path, ec);
  fs::create_directories(restore.path, ec);
  if (ec) {
    return failed("cannot create " + restore.path + ": " + ec.message());
  }
  const std::string file = restore.path + "/cpmove-" + account + ".tar.gz";
  std::string log;
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    if (!out) {
      return failed("cannot write " + file);
    }
    sha256_stream whole;
    retrier retry{env, ctl};
    for (const auto& c : chunks) {
      int attempts = 0;
      for (;;) {
        auto got = env.api->fetch("GET", c.url, nullptr, &ctl.flag());
        std::string problem;
        if (ok_status(got)) {
          if (static_cast<std::int64_t>(got.body.size()) != c.info.size) {
            problem = "size " + std::to_string(got.body.size()) + ", expected " +
                      std::to_string(c.info.size);
          } else if (agent_auth::sha256_hex(got.body) != c.info.sha256) {
            problem = "sha256 " + agent_auth::sha256_hex(got.body) + ", expected " + c.info.sha256;
          } else {
            whole.add(got.body);
            out.write(got.body.data(), static_cast<std::streamsize>(got.body.size()));
            retry.delays.reset();
            break;
          }
          // A wrong chunk may be a transfer fault: a few more tries.
          if (++attempts >= env.chunk_attempts) {
            return failed("chunk " + std::to_string(c.info.index) + ": " + problem, log);
          }
        } else if (!transient(got)) {
          return failed("chunk " + std::to_string(c.info.index) + ": download refused: " +
                          describe(got),
                        log);
        } else {
          problem = describe(got);
        }
        log::warn("agent_replication_retry", {{"job", j.id}, {"step", "download"},
                                              {"chunk", std::to_string(c.info.index)},
                                              {"error", problem}});
        if (!retry.again()) {
          return failed(retry.why_stopped(), log);
        }
      }
    }
    out.flush();
    if (!out) {
      return failed("write error in " + file);
    }
    auto have = whole.hex();
    if (have != want_sha) {
      return failed("package sha256 " + have + ", expected " + want_sha);
    }
  }
  log += "downloaded " + std::to_string(total) + " bytes in " + std::to_string(chunks.size()) +
         " chunks\n";
  auto c = run_command(spec_for(
    env, ctl, {under_root(env.root, "/usr/local/cpanel/scripts/restorepkg"), "--force", file}));
  auto r = from_command(c, "restorepkg");
  r.output = tail(log + r.output, env.output_max_bytes);
  if (r.status != "succeeded") {
    return r;
  }
  // The engine removes what is left, so a failed delete is only logged.
  for (const auto& ch : chunks) {
    if (ch.delete_url.empty()) {
      continue;
    }
    auto d = env.api->fetch("DELETE", ch.delete_url, nullptr, &ctl.flag());
    if (!ok_status(d)) {
      log::warn("agent_chunk_delete_failed", {{"job", j.id},
                                              {"chunk", std::to_string(ch.info.index)},
                                              {"error", describe(d)}});
    }
  }
  return r;
}

} // namespace

job_report run_job(const job& j, const job_env& env, job_control& ctl) {
  try {
    job_report r;
    if (j.kind == "command") {
      r = run_command_job(j, env, ctl);
    } else if (j.kind == "post_failover_hook") {
      r = run_hook_job(j, env, ctl);
    } else if (j.kind == "replicate_package") {
      r = replicate_package(j, env, ctl);
    } else if (j.kind == "replicate_restore") {
      r = replicate_restore(j, env, ctl);
    } else {
      r = failed("unknown job kind '" + j.kind + "'");
    }
    r.output = tail(std::move(r.output), env.output_max_bytes);
    return r;
  } catch (const std::exception& e) {
    // Allocation, or JSON access on params of the wrong type.
    return failed(std::string("internal error: ") + e.what());
  }
}

int remove_old_runs(const std::string& work_dir, std::int64_t max_age_s) {
  int removed = 0;
  std::error_code ec;
  const auto dir = fs::path(work_dir) / "replication";
  auto it = fs::directory_iterator(dir, ec);
  if (ec) {
    return 0;
  }
  const auto now = fs::file_time_type::clock::now();
  for (auto end = fs::directory_iterator(); it != end; it.increment(ec)) {
    if (ec) {
      break;
    }
    std::error_code e2;
    if (!it->is_directory(e2)) {
      continue;
    }
    auto mtime = fs::last_write_time(it->path(), e2);
    if (!e2 && now - mtime > std::chrono::seconds(max_age_s)) {
      fs::remove_all(it->path(), e2);
      ++removed;
    }
  }
  return removed;
}

} // namespace balctl::agent
