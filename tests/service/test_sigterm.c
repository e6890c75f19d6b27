/*
 * test_sigterm.c — `hetee server` stopped by SIGTERM at the earliest moment
 * a supervisor can know it runs: right after its port file appears. The
 * handler is installed before the port file is written
 * (src/service/server.c), so every round ends in a clean exit (status 0),
 * never in death by the signal (status 143). Several rounds: the first
 * generates and seals the enclave's keys, the others unseal them.
 */
#include "service/service_fixture.h"

#define ROUNDS 6

static void sigterm_after_port_file(void **state) {
  (void)state;
  sfx *f = sfx_new(); /* returns as soon as the port file is readable */
  int status = 0;
  for (int i = 0; i < ROUNDS; i++) {
    if (i) sfx_start(f);
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("round %d: the server did not exit cleanly after SIGTERM (%s %d; see %s/server.log)", i,
               WIFSIGNALED(status) ? "signal" : "status", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
               f->dir);
    f->pid = 0;
    f->port = 0;
  }
  sfx_free(f); /* pid 0: nothing left to stop */
}

int main(void) {
  const struct CMUnitTest t[] = {cmocka_unit_test(sigterm_after_port_file)};
  return cmocka_run_group_tests(t, NULL, NULL);
}
