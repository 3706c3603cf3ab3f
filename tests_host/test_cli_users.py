"""The host CLI's user and bindings commands (tools/microwitch, real processes on a temporary state dir):
clear messages naming what is wrong, exit 2, and nothing stored lost."""
import nodeproc


def _cli(tmp_path, *args, stdin=None):
    return nodeproc.microwitch_cli(list(args), state=str(tmp_path / "st"), input_text=stdin, check=False)


def test_user_add_list_remove_and_errors_keep_the_store(tmp_path):
    assert _cli(tmp_path, "user", "add", "alice@localhost", "--password-stdin", stdin="a-long-secret\n").returncode == 0
    p = _cli(tmp_path, "user", "add", "carol@other.org", "--password-stdin", stdin="another-secret\n")
    assert p.returncode == 0 and "added carol@other.org" in p.stdout
    assert "warning: this node serves localhost, 127.0.0.1, so carol@other.org cannot register" in p.stderr
    p = _cli(tmp_path, "user", "add", "alice@localhost", "--password-stdin", stdin="a-long-secret\n")
    assert p.returncode == 0 and "warning" not in p.stderr  # a served domain: no warning
    p = _cli(tmp_path, "user", "add", "not an address", "--password-stdin", stdin="x-long-secret\n")
    assert p.returncode == 2 and p.stderr.startswith("microwitch: not an address:"), p.stderr
    p = _cli(tmp_path, "user", "remove", "nobody@localhost")
    assert p.returncode == 2 and "no user nobody@localhost; nothing changed" in p.stderr
    assert _cli(tmp_path, "user", "list").stdout.split() == ["alice@localhost", "carol@other.org"]
    assert _cli(tmp_path, "user", "remove", "carol@other.org").returncode == 0
    assert _cli(tmp_path, "user", "list").stdout.split() == ["alice@localhost"]


def test_bindings_of_a_missing_state_dir_is_an_error_not_an_empty_node(tmp_path):
    p = nodeproc.microwitch_cli(["bindings"], state=str(tmp_path / "typo"), check=False)
    assert p.returncode == 2 and "state directory %s does not exist" % (tmp_path / "typo") in p.stderr
    assert not (tmp_path / "typo").exists()  # and nothing was created there
