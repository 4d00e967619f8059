"""The health check's HTTP questions, against a real local server: redirects, the Host header, connect_to, failures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wizard.health.http import fetch, fetch_until_up, split_address


class Site:
    """A tiny site: answers by path, remembers the Host header of every request."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.busy = 0  # answer 503 to this many requests first, as a proxy does while the app starts
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hosts.append(self.headers["Host"])
                if site.busy > 0:
                    site.busy -= 1
                    self.send_error(503)
                    return
                if self.path == "/":
                    self.redirect("/category/0/")
                elif self.path == "/away":
                    self.redirect("https://login.example.invalid/sso")
                elif self.path == "/loop":
                    self.redirect("/loop")
                elif self.path == "/broken":
                    self.send_error(500, "Internal Server Error")
                else:
                    body = f'<span class="version">v3.2.9</span> {self.path}'.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def redirect(self, where: str) -> None:
                self.send_response(302)
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    yield running
    running.server.shutdown()
    running.server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_redirect_on_the_site_is_followed_with_the_sites_own_host_header(site: Site):
    answer = fetch(site.url + "/")
    assert answer.status == 200 and answer.answered_ok
    assert answer.final_url == site.url + "/category/0/"
    assert answer.redirects == ("302 -> /category/0/",)
    assert "/category/0/" in answer.body
    assert site.hosts == [f"127.0.0.1:{site.port}"] * 2
    assert "302 -> /category/0/: 200 OK" in answer.evidence()


def test_connect_to_sends_the_request_elsewhere_but_names_the_site_in_the_host_header(site: Site):
    answer = fetch(f"http://indico.example.invalid:{site.port}/", connect_to=f"127.0.0.1:{site.port}")
    assert answer.status == 200, answer.evidence()
    assert site.hosts == [f"indico.example.invalid:{site.port}"] * 2  # the redirect too, on the same address


def test_a_redirect_to_another_site_is_not_followed_and_not_called_the_sites_answer(site: Site):
    answer = fetch(site.url + "/away")
    assert answer.status == 302 and answer.elsewhere == "https://login.example.invalid/sso"
    assert not answer.answered_ok
    assert "redirect to https://login.example.invalid/sso (not followed)" in answer.evidence()
    assert len(site.hosts) == 1


def test_a_server_error_a_refusal_and_a_redirect_loop_are_failures_with_their_evidence(site: Site):
    broken = fetch(site.url + "/broken")
    assert broken.status == 500 and not broken.answered_ok
    assert "500 Internal Server Error" in broken.evidence()

    refused = fetch(f"http://127.0.0.1:{free_port()}/")
    assert refused.status is None and refused.error is not None and "refused" in refused.error
    assert refused.starting  # what a restarting app server looks like: asked again by fetch_until_up

    loop = fetch(site.url + "/loop")
    assert loop.status is None and loop.error is not None and "more than 8 redirects" in loop.error


def test_fetch_until_up_asks_again_while_a_proxy_says_503_and_stops_at_the_first_real_answer(site: Site):
    site.busy = 2
    pauses: list[float] = []
    answer = fetch_until_up(site.url + "/page", wait=60, pause=pauses.append)
    assert answer.status == 200 and len(pauses) == 2 and len(site.hosts) == 3

    site.busy = 100
    gave_up = fetch_until_up(site.url + "/page", wait=0, pause=pauses.append)
    assert gave_up.status == 503  # no time left: the last answer, as it is


def test_split_address_reads_ipv6_in_brackets():
    assert split_address("[::1]:8000") == ("::1", 8000)
    assert split_address("127.0.0.1:80") == ("127.0.0.1", 80)


def test_a_site_that_accepts_but_never_answers_times_out_with_that_said():
    with socket.socket() as silent:  # listening, never reading or answering
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        answer = fetch(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.5)
    assert answer.status is None and answer.error == "no answer in time (timed out)", answer
    assert not answer.starting  # a hung app server is not one that is starting: it is not asked again
    assert "no answer in time" in answer.evidence()
