/*
 * cmd_plan.c — `hetee plan MODEL.onnx [--batch B] [--micro-batch M] [--lanes | --force-lanes]`:
 * the encrypted-inference
 * plan of a model without running anything: per stage the layers, the
 * hemat shape and packing, ciphertext / product / enclave counts, the
 * evaluation keys the host needs (rotation steps), the weight ciphertext
 * bytes, the predicted time and the refresh ops, and the model's ciphertext bytes
 * (hetee/engine.h). A model the engine cannot run is refused with one line
 * naming the node (exit 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/engine.h"

static const hetee_cli_opt OPTS[] = {
    {"batch", "B", 'b', "samples run together (default 64; micro-batches of at most 64)"},
    {"micro-batch", "M", 'm', "force the micro-batch (refused if an enclave frame would not fit)"},
    {"lanes", NULL, 'l', "price lane packings too, as `hetee run` does (its parties hold the 4-lane expansion keys)"},
    {"force-lanes", NULL, 'F', "every stage after the first takes its cheapest lane packing"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee plan", "hetee plan MODEL.onnx [--batch B] [--micro-batch M] [--lanes | --force-lanes]",
    "Prints how the encrypted engine runs MODEL: stages (one linear layer each), packing,\n"
    "ciphertext and enclave counts per micro-batch, keys (rotation steps), weight bytes,\n"
    "predicted time, refresh ops.",
    OPTS};

/* Parses a positive integer option value; 0 on error (message printed). */
unsigned hetee_cli_u32(const char *cmd, const char *opt, const char *v, unsigned max) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || n == 0 || n > max) {
    fprintf(stderr, "hetee %s: %s needs an integer in 1..%u, got '%s'\n", cmd, opt, max, v);
    return 0;
  }
  return (unsigned)n;
}

int hetee_cmd_plan(int argc, char **argv) {
  const char *model_path = NULL;
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &CMD, argc, argv);
  unsigned v;
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'b': if (hetee_cli_uint(&CMD, "--batch", p.arg, HETEE_ENGINE_MAX_IMAGES, &v)) return 2; o.batch = v; break;
    case 'm':
      if (hetee_cli_uint(&CMD, "--micro-batch", p.arg, HETEE_ENGINE_MAX_MICRO_BATCH, &v)) return 2;
      o.micro_batch = v;
      break;
    case 'l': o.lanes = 4; break;
    case 'F': o.lanes = 4, o.force_lanes = 1; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind >= argc) return hetee_cli_error(&CMD, "missing MODEL.onnx (see 'hetee plan --help')");
  if (p.optind + 1 < argc)
    return hetee_cli_error(&CMD, "more than one model ('%s', '%s')", argv[p.optind], argv[p.optind + 1]);
  model_path = argv[p.optind];
  hetee_nn_model *m = NULL;
  hetee_engine_plan *pl = NULL;
  if (hetee_nn_model_load(model_path, &m) || hetee_engine_plan_build(m, &o, &pl)) {
    fprintf(stderr, "hetee plan: %s\n", hetee_last_error());
    hetee_nn_model_free(m);
    return 1;
  }
  printf("model %s\n", model_path);
  hetee_engine_plan_print(pl, stdout);
  hetee_engine_plan_free(pl);
  hetee_nn_model_free(m);
  return fflush(stdout) == 0 ? 0 : 1;
}
