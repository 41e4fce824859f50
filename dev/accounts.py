"""The local stack's OS accounts: who runs what, and who may read which file.

Kerberos means nothing if a kernel can read a keytab, so the Kerberized stack, when its launcher
runs as root (as on CI), splits itself the way a careful single-machine install does:

    yl-hadoop   NameNode, DataNode, ResourceManager; owns hadoop.keytab (nn/ dn/ rm/ HTTP/127.0.0.1)
                and the HDFS data
    yl-yarn     the NodeManager and therefore every YARN container (the DefaultContainerExecutor
                runs containers as the NodeManager's account); owns nm.keytab (nm/ and its own
                HTTP/localhost web key) and nothing else
    yardlab     the edge, Enterprise Gateway and spark-submit; owns service.keytab and the ticket
                cache, the edge's databases and stack.json
    <user>      each hub user's Lab server (The Littlest JupyterHub's model), home 0700, member of
                yl-users
    root        the launcher, the KDC and the hub (it starts Lab servers as their users)

Containers of different users still share yl-yarn on the one NodeManager: the LinuxContainerExecutor
that runs them as their users needs a setuid binary that cannot be had here (the README's security
section says what production sets).  A launcher that is not root keeps one account for everything
and says so.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from pathlib import Path

HADOOP = "yl-hadoop"
YARN = "yl-yarn"
SERVICE = "yardlab"
#: the local Kafka broker's account
KAFKA = "yl-kafka"
#: every hub user's account the stack made; the hub runs Lab servers only as members
USERS_GROUP = "yl-users"
#: HDFS's superuser group (the service account provisions homes and sets their owners)
SUPERGROUP = "yl-supergroup"
NOLOGIN = "/usr/sbin/nologin"
#: what an OS account made for a hub user may be called (Debian's useradd takes a superset)
HUB_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class AccountError(RuntimeError):
    """An account could not be made or is not one the stack may use."""


def split_wanted(security: str) -> bool:
    """Whether this launcher splits the stack into accounts: root, Kerberos, not told otherwise,
    and a checkout the other accounts can reach (see :func:`unreachable`)."""
    return (os.geteuid() == 0 and security == "kerberos" and os.environ.get("YARDLAB_ACCOUNTS", "split") != "one"
            and not unreachable())


def unreachable() -> list[str]:
    """Folders other accounts cannot pass through on the way to the checkout or to the venv's
    interpreter (a checkout under a 0700 /root, a pyenv Python): the split stack cannot run there."""
    root = Path(__file__).resolve().parent.parent
    python = Path(os.path.realpath(root / ".venv" / "bin" / "python"))
    state = Path(os.environ.get("YARDLAB_STACK_DIR") or root / ".stack").resolve()
    blocked = []
    for target in (root, python.parent, state.parent):
        for folder in (target, *target.parents):
            try:
                if not os.stat(folder).st_mode & 0o001:
                    blocked.append(str(folder))
            except OSError:
                continue
    return sorted(set(blocked))


def _run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AccountError(f"`{' '.join(cmd)}` failed: {(out.stderr or out.stdout).strip()}")


def ensure_group(name: str) -> None:
    if not _group_exists(name):
        _run(["groupadd", "--system", name])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def groups_of(name: str) -> set[str]:
    pw = pwd.getpwnam(name)
    return {grp.getgrgid(g).gr_name for g in os.getgrouplist(name, pw.pw_gid)}


def ensure_account(name: str, home: Path, *, system: bool, groups: tuple[str, ...] = ()) -> pwd.struct_passwd:
    """Make (or adjust) ``name`` with its home folder ``home`` (0700, its own) and ``groups``."""
    if not system and not _user_exists(name) and _group_exists(name):
        # a hub user named "shadow", "disk" or "yl-supergroup" would get that group's powers
        raise AccountError(f"{name!r} is the name of a group on this machine; a hub user's account "
                           "never joins an existing group by its name")
    for g in groups:
        ensure_group(g)
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--home-dir", str(home), "--no-create-home",
               "--shell", NOLOGIN if system else "/bin/bash"]
        cmd += ["--gid", name] if _group_exists(name) else ["--user-group"]
        if system:
            cmd.append("--system")
        if groups:
            cmd += ["--groups", ",".join(groups)]
        _run([*cmd, name])
    else:
        if pw.pw_dir != str(home):
            _run(["usermod", "--home", str(home), name])
        missing = set(groups) - groups_of(name)
        if missing:
            _run(["usermod", "--append", "--groups", ",".join(sorted(missing)), name])
    pw = pwd.getpwnam(name)
    home.mkdir(parents=True, exist_ok=True)
    if os.lstat(home).st_uid != pw.pw_uid:
        # a home from an older stack (the launcher's) or an earlier account: all of it is theirs now
        own(home, name, recursive=True)
    os.chown(home, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    os.chmod(home, 0o700, follow_symlinks=False)
    return pw


def check_hub_user(name: str, home: Path, homes: Path) -> None:
    """Refuse a hub user name that cannot be an account of its own, or whose home would not be a
    folder of ``homes`` (``..``, a path, upper case or a look-alike letter)."""
    if not HUB_USER_NAME.fullmatch(name):
        raise AccountError(f"{name[:64]!r} cannot be an OS account name (lower-case letters, digits, _ and -, "
                           "at most 32, not starting with a digit or -)")
    if home.resolve().parent != homes.resolve():
        raise AccountError(f"the home of {name!r} would be {home}, outside {homes}")


def ensure_hub_user(name: str, home: Path) -> pwd.struct_passwd:
    """The account a hub user's Lab server runs as.  An existing account is used only if the stack
    made it (a member of yl-users): a hub user named root, yardlab or yl-yarn is refused."""
    check_hub_user(name, home, home.parent)
    if _user_exists(name):
        if USERS_GROUP not in groups_of(name):
            raise AccountError(f"{name!r} is an OS account the stack did not make for a hub user "
                               f"(not in {USERS_GROUP}); no Lab server runs as it")
    return ensure_account(name, home, system=False, groups=(USERS_GROUP,))


def remove_hub_user(name: str) -> None:
    """Remove the account of a deleted hub user (only one the stack made; its home is moved away)."""
    if not _user_exists(name) or USERS_GROUP not in groups_of(name):
        return
    home = Path(pwd.getpwnam(name).pw_dir)
    _run(["userdel", name])
    # its uid is free for the next account: the home goes where no account can reach it
    if home.is_dir() and not home.is_symlink():
        removed = home.parent / ".removed"
        removed.mkdir(mode=0o700, exist_ok=True)
        os.chown(removed, 0, 0)
        os.chmod(removed, 0o700)
        home.rename(removed / f"{name}-{int(__import__('time').time())}")


def popen_args(name: str) -> dict:
    """subprocess.Popen's arguments that start a process as ``name`` with its groups."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": os.getgrouplist(name, pw.pw_gid)}


def login_env(name: str) -> dict[str, str]:
    pw = pwd.getpwnam(name)
    return {"HOME": pw.pw_dir, "USER": name, "LOGNAME": name}


def own(path: Path, name: str, mode: int | None = None, recursive: bool = False) -> None:
    """chown ``path`` (and, with ``recursive``, all below it) to ``name``, never following a link.

    The walk goes by open folder descriptors (os.fwalk), not by path names: these folders are
    writable by less trusted accounts, and a folder swapped for a link to /etc while root walks
    by name would hand /etc to them."""
    pw = pwd.getpwnam(name)
    if not os.path.lexists(path):
        return
    os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    if mode is not None and not path.is_symlink():
        os.chmod(path, mode)
    if recursive and path.is_dir() and not path.is_symlink():
        for _, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
            for entry in (*dirs, *files):
                os.chown(entry, pw.pw_uid, pw.pw_gid, dir_fd=dir_fd, follow_symlinks=False)


def stop_processes_of(names: tuple[str, ...]) -> None:
    """End every process of these accounts (a stack's leftovers, before its files are handed out)."""
    uids = set()
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid in uids:
                os.kill(int(entry.name), 9)
        except (OSError, ValueError):
            continue
