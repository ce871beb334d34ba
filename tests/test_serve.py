"""`tayori serve` starts every part: the job consumer, scheduler, tayori mx and the workers as
processes, then the web server (here both replaced by recorders)."""

import subprocess

import pytest
from typer.testing import CliRunner

import tayori.cli.server  # noqa: F401  (registers the commands)
from tayori.cli import app


class Child:
    def terminate(self):
        pass

    def wait(self, timeout=None):
        return 0


@pytest.mark.django_db
def test_serve_starts_every_part_and_the_web_server(monkeypatch):
    import uvicorn

    started, served = [], []
    monkeypatch.setattr(subprocess, "Popen", lambda command: started.append(command) or Child())
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.append(kwargs))
    monkeypatch.setattr(tayori.cli.server, "migrate", lambda: None)
    result = CliRunner().invoke(app, ["serve", "--port", "8799"])
    assert result.exit_code == 0, result.output
    assert [command[3:] for command in started] == [
        ["jobs"], ["scheduler"], ["mx"], ["worker", "--processes", "1"]]
    assert served == [{"host": "127.0.0.1", "port": 8799, "log_level": "info", "workers": 1}]
