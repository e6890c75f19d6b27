/*
 * cmd_plan.c — `hetee plan MODEL.onnx [--batch B]`: the encrypted-inference
 * plan of a model without running anything: per stage the layers, the
 * hemat shape and packing, ciphertext / product / enclave counts, the
 * predicted time and the refresh ops, and the model's ciphertext bytes
 * (hetee/engine.h). A model the engine cannot run is refused with one line
 * naming the node (exit 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hetee/engine.h"

static void plan_usage(FILE *f) {
  fprintf(f,
          "usage: hetee plan MODEL.onnx [--batch B] [--micro-batch M]\n"
          "\n"
          "Prints how the encrypted engine runs MODEL: stages (one linear layer each), packing,\n"
          "ciphertext and enclave counts per micro-batch, predicted time, refresh ops.\n"
          "\n"
          "  --batch B        samples run together (default 64; micro-batches of at most 64)\n"
          "  --micro-batch M  force the micro-batch (refused if an enclave frame would not fit)\n");
}

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
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      plan_usage(stdout);
      return 0;
    } else if ((!strcmp(a, "--batch") || !strcmp(a, "--micro-batch")) && i + 1 < argc) {
      uint32_t v = hetee_cli_u32("plan", a, argv[++i],
                                 !strcmp(a, "--batch") ? HETEE_ENGINE_MAX_IMAGES : HETEE_ENGINE_MAX_MICRO_BATCH);
      if (!v) return 2;
      if (!strcmp(a, "--batch")) o.batch = v;
      else o.micro_batch = v;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "hetee plan: unknown or incomplete option '%s'\n", a);
      plan_usage(stderr);
      return 2;
    } else if (!model_path) {
      model_path = a;
    } else {
      fprintf(stderr, "hetee plan: more than one model ('%s', '%s')\n", model_path, a);
      return 2;
    }
  }
  if (!model_path) {
    plan_usage(stderr);
    return 2;
  }
  hetee_nn_model *m = NULL;
  hetee_engine_plan *p = NULL;
  if (hetee_nn_model_load(model_path, &m) || hetee_engine_plan_build(m, &o, &p)) {
    fprintf(stderr, "hetee plan: %s\n", hetee_last_error());
    hetee_nn_model_free(m);
    return 1;
  }
  printf("model %s\n", model_path);
  hetee_engine_plan_print(p, stdout);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
  return fflush(stdout) == 0 ? 0 : 1;
}
