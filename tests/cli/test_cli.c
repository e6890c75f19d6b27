/*
 * test_cli.c — the `hetee` command as a new user meets it, driving the real
 * binary ($HETEE_BIN_DIR/hetee) with HOME in a temporary directory:
 *   - `--help` of every command and subcommand exits 0, prints on stdout
 *     only, and names each of the command's options;
 *   - unknown options, options without their value, missing arguments and
 *     unknown commands exit non-zero with exactly one line on stderr naming
 *     the problem and nothing on stdout;
 *   - `hetee --version` / `hetee version`;
 *   - `hetee keygen` refuses to replace an existing identity (home or --out
 *     file) unless --force, and the refused identity is left byte for byte;
 *   - output files are checked before the work starts (missing directory);
 *   - no progress output when stderr is not a terminal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char TMP[256];

typedef struct {
  int status;
  char out[1 << 16], err[1 << 16];
} res;

static void slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = 0;
}

/* Runs `hetee ARGS` with HOME=TMP/home, stdout and stderr captured apart. */
static res *run(const char *fmt, ...) {
  static res r;
  char args[4096], cmd[6000], of[400], ef[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  const char *bin = getenv("HETEE_BIN_DIR");
  snprintf(of, sizeof of, "%s/stdout", TMP);
  snprintf(ef, sizeof ef, "%s/stderr", TMP);
  snprintf(cmd, sizeof cmd, "HOME='%s/home' '%s/hetee' %s >'%s' 2>'%s' </dev/null", TMP, bin ? bin : "./bin", args,
           of, ef);
  int st = system(cmd);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  slurp(of, r.out, sizeof r.out);
  slurp(ef, r.err, sizeof r.err);
  return &r;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* A usage error: non-zero, nothing on stdout, one line on stderr that
 * starts with the command's name and contains `needle`. */
static void one_line_error(res *r, const char *prefix, const char *needle) {
  if (r->status == 0 || lines(r->err) != 1 || r->out[0] || strncmp(r->err, prefix, strlen(prefix)) ||
      !strstr(r->err, needle))
    fprintf(stderr, "status %d\nstdout: %s\nstderr: %s\nwanted: %s ... %s\n", r->status, r->out, r->err, prefix,
            needle);
  assert_int_not_equal(r->status, 0);
  assert_int_equal(lines(r->err), 1);
  assert_string_equal(r->out, "");
  assert_memory_equal(r->err, prefix, strlen(prefix));
  assert_non_null(strstr(r->err, needle));
}

typedef struct {
  const char *cmd;         /* as typed after `hetee` */
  const char *opts[16];    /* every option the command takes */
} help_case;

static const help_case HELP[] = {
    {"demo", {"--threads"}},
    {"plain", {"--model", "--labels", "--count", "--logits-out", "--time"}},
    {"keygen", {"--role", "--home", "--trust-platform", "--trust-measurement", "--out", "--force"}},
    {"platform", {"--dir"}},
    {"platform init", {"--dir"}},
    {"enclave", {"--config", "--mp"}},
    {"enclave measure", {"--config", "--mp"}},
    {"enclave config", {"--config", "--mp"}},
    {"attest", {"--local", "--platform", "--expect", "--config", "--mp", "--server", "--home"}},
    {"server",
     {"--listen", "--data-dir", "--platform", "--mp", "--config", "--port-file", "--workers", "--threads",
      "--max-queue", "--max-party-jobs", "--max-model-mb", "--max-input-mb"}},
    {"trust", {"--home", "--trust-platform", "--trust-measurement"}},
    {"model", {"--home", "--server"}},
    {"model upload", {"--allow", "--output", "--batch", "--name", "--home", "--server"}},
    {"model list", {"--home", "--server"}},
    {"model show", {"--home", "--server"}},
    {"model delete", {"--home", "--server"}},
    {"infer", {"--model", "--labels", "--count", "--home", "--server"}},
    {"plan", {"--batch", "--micro-batch", "--lanes", "--force-lanes"}},
    {"run", {"--model", "--labels", "--count", "--batch", "--threads", "--platform", "--verbose", "--no-lanes",
             "--force-lanes"}},
};

static void test_help(void **state) {
  for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++) {
    for (int form = 0; form < 2; form++) {
      res *r = run("%s %s", HELP[i].cmd, form ? "-h" : "--help");
      if (r->status) fprintf(stderr, "%s --help: %d %s\n", HELP[i].cmd, r->status, r->err);
      assert_int_equal(r->status, 0);
      assert_string_equal(r->err, "");
      assert_non_null(strstr(r->out, "usage: hetee "));
      assert_non_null(strstr(r->out, "--help"));
      for (int k = 0; HELP[i].opts[k]; k++) {
        char want[64];
        snprintf(want, sizeof want, "%s ", HELP[i].opts[k]); /* the option itself, not a prefix of another */
        if (!strstr(r->out, want)) fprintf(stderr, "'%s --help' does not mention %s:\n%s\n", HELP[i].cmd, want, r->out);
        assert_non_null(strstr(r->out, want));
      }
    }
  }
  /* the list of commands, and `hetee help CMD` = `hetee CMD --help` */
  res *r = run("--help");
  assert_int_equal(r->status, 0);
  const char *cmds[] = {"demo", "plain", "keygen", "platform", "enclave", "attest", "plan", "run",
                        "server", "trust", "model", "infer", "version"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    char want[32];
    snprintf(want, sizeof want, "  %s ", cmds[i]);
    assert_non_null(strstr(r->out, want));
  }
  r = run("help keygen");
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "usage: hetee keygen"));
}

static void test_version(void **state) {
  res *r = run("--version");
  assert_int_equal(r->status, 0);
  assert_int_equal(strncmp(r->out, "hetee ", 6), 0);
  assert_int_equal(lines(r->out), 1);
  char v[64];
  snprintf(v, sizeof v, "%.60s", r->out);
  r = run("version");
  assert_int_equal(r->status, 0);
  assert_string_equal(r->out, v);
  one_line_error(run("version extra"), "hetee version:", "extra");
}

static void test_errors(void **state) {
  /* unknown options, everywhere, named */
  for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "hetee %s", HELP[i].cmd);
    res *r = run("%s --no-such-option", HELP[i].cmd);
    /* commands with subcommands may name the missing subcommand instead */
    if (!strcmp(HELP[i].cmd, "platform") || !strcmp(HELP[i].cmd, "enclave") || !strcmp(HELP[i].cmd, "model")) {
      one_line_error(r, prefix, "subcommand");
      continue;
    }
    one_line_error(r, prefix, "'--no-such-option'");
    one_line_error(run("%s --no-such=1", HELP[i].cmd), prefix, "'--no-such'");
    one_line_error(run("%s -Z", HELP[i].cmd), prefix, "'-Z'");
  }
  one_line_error(run(""), "hetee:", "missing command");
  one_line_error(run("frobnicate"), "hetee:", "'frobnicate'");
  one_line_error(run("--frobnicate"), "hetee:", "'--frobnicate'");
  /* an option without its value */
  one_line_error(run("keygen --role"), "hetee keygen:", "'--role' needs a value");
  one_line_error(run("infer IMAGES --model"), "hetee infer:", "'--model' needs a value");
  one_line_error(run("server --data-dir"), "hetee server:", "'--data-dir' needs a value");
  one_line_error(run("enclave measure x --mp"), "hetee enclave measure:", "'--mp' needs a value");
  /* missing or wrong arguments */
  one_line_error(run("keygen"), "hetee keygen:", "--role");
  one_line_error(run("keygen --role xx"), "hetee keygen:", "'xx'");
  one_line_error(run("keygen --role dp --trust-platform p"), "hetee keygen:", "--trust-measurement");
  one_line_error(run("platform"), "hetee platform:", "init");
  one_line_error(run("platform init"), "hetee platform init:", "--dir");
  one_line_error(run("platform frob"), "hetee platform:", "'frob'");
  one_line_error(run("enclave"), "hetee enclave:", "measure");
  one_line_error(run("enclave measure"), "hetee enclave measure:", "PATH");
  one_line_error(run("enclave measure a b"), "hetee enclave measure:", "'b'");
  one_line_error(run("enclave config extra"), "hetee enclave config:", "'extra'");
  one_line_error(run("attest"), "hetee attest:", "--local");
  one_line_error(run("attest --local x"), "hetee attest:", "--platform");
  one_line_error(run("attest --server http://127.0.0.1:1 --local x"), "hetee attest:", "--server");
  one_line_error(run("server --platform p"), "hetee server:", "--data-dir");
  one_line_error(run("server --data-dir d"), "hetee server:", "--platform");
  one_line_error(run("server --data-dir d --platform p --workers 0"), "hetee server:", "--workers");
  one_line_error(run("trust"), "hetee trust:", "--trust-platform");
  one_line_error(run("model"), "hetee model:", "subcommand");
  one_line_error(run("model frob"), "hetee model:", "'frob'");
  one_line_error(run("model upload"), "hetee model upload:", "MODEL.onnx");
  one_line_error(run("model upload m.onnx"), "hetee model upload:", "--allow");
  one_line_error(run("model show"), "hetee model show:", "ID");
  one_line_error(run("model show abc"), "hetee model show:", "'abc'");
  one_line_error(run("model list extra"), "hetee model list:", "'extra'");
  one_line_error(run("infer x.idx"), "hetee infer:", "--model");
  one_line_error(run("infer --model 1"), "hetee infer:", "IMAGES");
  one_line_error(run("infer --model 0 x"), "hetee infer:", "--model");
  one_line_error(run("infer --model 1 --count -2 x"), "hetee infer:", "--count");
  one_line_error(run("plain x.idx"), "hetee plain:", "--model");
  one_line_error(run("plain --model m.onnx"), "hetee plain:", "IMAGES");
  one_line_error(run("demo --threads 0"), "hetee demo:", "--threads");
  one_line_error(run("plan"), "hetee plan:", "MODEL.onnx");
  one_line_error(run("plan a.onnx b.onnx"), "hetee plan:", "'b.onnx'");
  one_line_error(run("plan a.onnx --micro-batch 0"), "hetee plan:", "--micro-batch");
  one_line_error(run("run x.idx"), "hetee run:", "--model");
  one_line_error(run("run --model m.onnx"), "hetee run:", "IMAGES");
  one_line_error(run("run --model m.onnx x --threads 65"), "hetee run:", "--threads");
  one_line_error(run("run --model m.onnx x --no-lanes --force-lanes"), "hetee run:", "--force-lanes");
  one_line_error(run("demo extra"), "hetee demo:", "'extra'");
}

static void file_bytes(const char *path, char *buf, size_t cap, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  *n = fread(buf, 1, cap, f);
  fclose(f);
}

static void test_keygen_refuses_overwrite(void **state) {
  char id[400], before[256], after[256];
  size_t nb, na;
  res *r = run("keygen --role dp --home '%s/dp'", TMP);
  assert_int_equal(r->status, 0);
  snprintf(id, sizeof id, "%s/dp/id", TMP);
  file_bytes(id, before, sizeof before, &nb);
  r = run("keygen --role dp --home '%s/dp'", TMP);
  one_line_error(r, "hetee keygen:", "--force");
  r = run("keygen --role mp --home '%s/dp' --trust-platform x --trust-measurement 00", TMP);
  assert_int_not_equal(r->status, 0);
  file_bytes(id, after, sizeof after, &na);
  assert_int_equal(na, nb);
  assert_memory_equal(before, after, nb);
  r = run("keygen --role dp --home '%s/dp' --force", TMP);
  assert_int_equal(r->status, 0);
  file_bytes(id, after, sizeof after, &na);
  assert_int_equal(na, nb);
  assert_memory_not_equal(before, after, nb);

  /* the default home is ~/.hetee */
  r = run("keygen --role mp");
  assert_int_equal(r->status, 0);
  snprintf(id, sizeof id, "%s/home/.hetee/id.pub", TMP);
  assert_int_equal(access(id, R_OK), 0);
  one_line_error(run("keygen --role mp"), "hetee keygen:", "--force");

  /* --out FILE: the same rule */
  assert_int_equal(run("keygen --role mp --out '%s/k'", TMP)->status, 0);
  snprintf(id, sizeof id, "%s/k", TMP);
  file_bytes(id, before, sizeof before, &nb);
  one_line_error(run("keygen --role mp --out '%s/k'", TMP), "hetee keygen:", "--force");
  file_bytes(id, after, sizeof after, &na);
  assert_memory_equal(before, after, nb);
  assert_int_equal(run("keygen --role mp --out '%s/k' --force", TMP)->status, 0);
  file_bytes(id, after, sizeof after, &na);
  assert_memory_not_equal(before, after, nb);
  /* an output in a directory that does not exist: refused before any work */
  one_line_error(run("keygen --role mp --out '%s/no/such/dir/k'", TMP), "hetee keygen:", "does not exist");
}

/* `hetee plan --force-lanes` plans e2dm's dense stage in lanes; `--lanes`
 * only prices them, and the default policy keeps the usual packing */
static void test_plan_lanes(void **state) {
  (void)state;
  const char *src = getenv("HETEE_SOURCE_DIR");
  res *rp = run("plan '%s/models/e2dm.onnx' --force-lanes", src ? src : ".");
  assert_int_equal(rp->status, 0);
  assert_non_null(strstr(rp->out, "lanes    4: the enclave encrypts 3 dense inputs"));
  /* with the rotation steps whose Galois keys the expansion needs */
  /* (the least s with 5^s = 1 + N/h mod 2N, h = 1, 2, at N = 8192) */
  int steps[2] = {-1, -1};
  unsigned long g = 1;
  for (int st = 0; st < 4096; st++, g = g * 5 % 16384)
    for (int j = 0; j < 2; j++)
      if (steps[j] < 0 && g == 1 + 8192ul / (1ul << j)) steps[j] = st;
  char want[96];
  snprintf(want, sizeof want, "keys     rotation steps %d, %d (Galois keys of the 4-lane expansion", steps[0], steps[1]);
  assert_non_null(strstr(rp->out, want));
  rp = run("plan '%s/models/e2dm.onnx' --lanes", src ? src : ".");
  assert_int_equal(rp->status, 0);
  assert_null(strstr(rp->out, "lanes    4"));
}

static void test_outputs_checked_first(void **state) {
  const char *src = getenv("HETEE_SOURCE_DIR");
  /* the model does not even exist: the output is checked before it is read */
  one_line_error(run("plain --model '%s/models/mlp.onnx' x.idx --logits-out '%s/missing/l.npy'", src ? src : ".", TMP),
                 "hetee plain:", "does not exist");
  one_line_error(run("plain --model m.onnx x.idx --logits-out '%s'", TMP), "hetee plain:", "directory");
  one_line_error(run("server --data-dir '%s/d' --platform '%s/p' --port-file '%s/missing/port'", TMP, TMP, TMP),
                 "hetee server:", "does not exist");
  /* and no progress line: stderr is not a terminal here */
  res *r = run("keygen --role dp --home '%s/dp2'", TMP);
  assert_int_equal(r->status, 0);
  assert_null(strchr(r->err, '\r'));
  assert_null(strchr(r->out, '\r'));
}

int main(void) {
  snprintf(TMP, sizeof TMP, "/tmp/hetee-cli-XXXXXX");
  if (!mkdtemp(TMP)) return 1;
  char home[300];
  snprintf(home, sizeof home, "%s/home", TMP);
  if (mkdir(home, 0700)) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_keygen_refuses_overwrite),
      cmocka_unit_test(test_outputs_checked_first),
      cmocka_unit_test(test_plan_lanes),
  };
  int rc = cmocka_run_group_tests_name("cli/cli", tests, NULL, NULL);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
  if (system(cmd)) rc = 1;
  return rc;
}
