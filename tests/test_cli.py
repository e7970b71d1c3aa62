"""The command line runs a comparison, prints the agreement and writes a PNG."""
import pytest

from hdtheory.cli import main  # noqa: E402


def test_cli_compare_writes_plot(tmp_path, capsys):
    out = tmp_path / "risk.png"
    code = main(["compare", "--problem", "powerlaw", "--d", "300", "--alpha", "0.5", "--beta", "0.25",
                 "--noise", "gaussian:0.3", "--lr-frac", "0.5", "--batch", "4", "--steps", "500", "--seeds", "16",
                 "--out", str(out), "--save", str(tmp_path / "c.npz"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "agreement: OK" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("args", [["--lr", "-1"], ["--batch", "0", "--lr", "0.1"], ["--noise", "cauchy:1", "--lr", "0.1"]])
def test_cli_bad_input(tmp_path, capsys, args):
    code = main(["compare", "--d", "20", "--steps", "10", "--seeds", "2", "--out", str(tmp_path / "x.png"), "--quiet"]
                + args)
    assert code == 2
    assert "error" in capsys.readouterr().err
