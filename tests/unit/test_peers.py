"""Reading `ss -xpn`: which process holds each end of a Unix socket (paths may hold spaces)."""

from wizard.lockwatch.peers import parse_ss

SS = """\
u_str ESTAB 0      0      /var/tmp/my site/sock/.s.PGSQL.5432 884211            * 884210 users:(("postgres",pid=4242,fd=9))
u_str ESTAB 0      0      * 884210            * 884211 users:(("psql",pid=4240,fd=3))
u_str ESTAB 0      0      * 243 * 242
"""


def test_both_ends_of_a_socket_whose_path_holds_a_space_are_read():
    ends = parse_ss(SS)
    assert ends["884211"] == ([4242], "884210")
    assert ends["884210"] == ([4240], "884211")
    assert ends["243"] == ([], "242")  # a socket whose processes this user may not see


def test_without_the_state_column_the_line_is_read_all_the_same():
    assert parse_ss('u_str 0 0 * 11 * 12 users:(("psql",pid=7,fd=3))\n') == {"11": ([7], "12")}
