"""gunicorn settings for the tests' httpbin (tests/src/httpbin.rs starts it).

Binds a free port on 127.0.0.1 and prints it on stdout once listening; stops when its stdin
closes: that is how the tests stop it, and a test process that dies without stopping it does
not leave it running.
"""

import os
import signal
import threading

bind = ["127.0.0.1:0"]
workers = 1
# Threads, so that a slow request (/delay/N) does not hold up the next test's requests.
worker_class = "gthread"
threads = 8
# Longer than any pause between a test's requests: an idle kept-alive connection is not closed
# under a client about to reuse it.
keepalive = 30
graceful_timeout = 1
accesslog = None


def when_ready(server):
    port = server.LISTENERS[0].sock.getsockname()[1]
    print(f"httpbin-port {port}", flush=True)

    def stop_when_stdin_closes():
        # The raw descriptor, not sys.stdin: a worker forked while this thread held
        # sys.stdin's lock would fail to take it again when it exits.
        while os.read(0, 4096):
            pass
        # SIGINT: gunicorn's quick shutdown (its worker exits at once and is reaped).
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
