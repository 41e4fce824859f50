"""The `yardlab` command line: main (whoami, cluster, apps, kill), env, usage; format holds the tables."""
