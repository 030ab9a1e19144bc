#pragma once

// A work-around for CAF 0.17's OpenSSL module (libcaf_openssl), which the
// cluster link uses with cluster.tls_*.
//
// OpenSSL keeps one error queue per thread, and SSL_get_error() reads it:
// "the current thread's error queue must be empty before the TLS/SSL I/O
// operation is attempted, or SSL_get_error() will not work reliably"
// (SSL_get_error(3)). CAF's session calls SSL_read/SSL_write/SSL_connect/
// SSL_accept and then SSL_get_error() without ever clearing the queue, all
// on the middleman's one multiplexer thread. So once any connection fails
// there (a peer whose certificate was refused, a node killed mid-stream, or
// the second connection CAF opens and closes on purpose when two nodes
// connect to each other), its error stays queued, and the next
// SSL_ERROR_WANT_READ on a healthy connection reads as SSL_ERROR_SSL: CAF
// closes it, and the link between two nodes is gone for good. Reproduced
// with two processes and no balctl code; an LD_PRELOAD that clears the queue
// before each call fixes it.
//
// This file defines those four functions in balctld itself: the dynamic
// linker binds libcaf_openssl's calls (and everyone else's, libcurl and our
// own tls_session included) to them; each clears the calling thread's error
// queue, as OpenSSL asks every caller to, and calls OpenSSL's.

namespace balctl {

/// True when the process's SSL_read and friends are this file's (the
/// dynamic linker bound them here), so CAF's sessions get a clean error
/// queue. Referencing it also links this file in.
bool openssl_error_queue_guard_active();

} // namespace balctl
