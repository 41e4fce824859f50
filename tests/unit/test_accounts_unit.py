"""dev/accounts.py's checks that need no root: which hub user names may become OS accounts."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dev"))
import accounts  # noqa: E402  (dev/accounts.py)


@pytest.mark.parametrize("name", ["alice", "bob", "yl-acl-0f3a", "_svc", "a" * 32])
def test_plain_names_may_become_accounts(tmp_path, name):
    accounts.check_hub_user(name, tmp_path / "home" / name, tmp_path / "home")


@pytest.mark.parametrize("name", ["..", ".", "../root", "a/b", "Alice", "\u0430lice", "-rf", "1bob", "a" * 33,
                                  "bob\n", "", "al ice", "root:x"])
def test_names_that_are_paths_look_alikes_or_options_are_refused(tmp_path, name):
    with pytest.raises(accounts.AccountError, match="cannot be an OS account name"):
        accounts.check_hub_user(name, tmp_path / "home" / name, tmp_path / "home")


def test_a_home_outside_the_homes_folder_is_refused(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "mallory").symlink_to(tmp_path)  # planted: the home would be the stack folder
    with pytest.raises(accounts.AccountError, match="outside"):
        accounts.check_hub_user("mallory", tmp_path / "home" / "mallory", tmp_path / "home")


def test_a_hub_user_named_like_a_group_gets_no_account_in_it(tmp_path):
    """useradd would make "shadow" (or "disk", "yl-supergroup") a member of that group by name:
    /etc/shadow or the raw disks for a Lab server.  Refused before anything is made."""
    import grp
    import pwd

    users = {p.pw_name for p in pwd.getpwall()}
    groups = [g.gr_name for g in grp.getgrall()
              if g.gr_name not in users and accounts.HUB_USER_NAME.fullmatch(g.gr_name)]
    assert groups, "this machine has no group without a user of its name (Debian has shadow, disk, staff, ...)"
    for name in groups[:5]:
        with pytest.raises(accounts.AccountError, match="name of a group"):
            accounts.ensure_hub_user(name, tmp_path / "home" / name)
    assert not (tmp_path / "home").exists()
