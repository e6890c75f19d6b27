/*
 * metrics.c — counters for GET /metrics in the Prometheus text format
 * (version 0.0.4): requests by status class, queue depth, jobs, images,
 * job latency histogram, enclave restarts and the enclave's share of the
 * jobs' wall time (its CPU seconds, as it counts them, over the host's wall
 * seconds of the same runs), and the enclave's own counters per message
 * type (STATS: messages and CPU seconds since the enclave started).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/wire/proto.h"
#include "service/server_internal.h"

static const double BUCKETS[12] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300};

void metrics_signed(metrics *m, int v3) {
  pthread_mutex_lock(&m->lock);
  m->signed_ok[v3 ? 1 : 0]++;
  pthread_mutex_unlock(&m->lock);
}

void metrics_request(metrics *m, int status, uint64_t bytes_in) {
  pthread_mutex_lock(&m->lock);
  int c = status / 100;
  if (c >= 1 && c <= 5) m->req_by_class[c]++;
  m->req_total++;
  m->bytes_in += bytes_in;
  pthread_mutex_unlock(&m->lock);
}

void metrics_job(metrics *m, int ok, double latency_s, double wall_s, double enclave_s, uint64_t images) {
  pthread_mutex_lock(&m->lock);
  if (ok) {
    m->jobs_done++;
    m->images += images;
    m->job_latency_sum += latency_s;
    m->job_wall_sum += wall_s;
    m->job_enclave_sum += enclave_s;
    for (int i = 0; i < 12; i++)
      if (latency_s <= BUCKETS[i]) m->latency_buckets[i]++;
  } else {
    m->jobs_failed++;
  }
  pthread_mutex_unlock(&m->lock);
}

void metrics_batch(metrics *m, uint64_t jobs) {
  pthread_mutex_lock(&m->lock);
  m->batches++;
  m->batched_jobs += jobs;
  pthread_mutex_unlock(&m->lock);
}

/* The enclave's message types /metrics names (others appear as numbers). */
static const struct {
  uint16_t type;
  const char *name;
} MSG_NAMES[] = {{HETEE_MSG_INFO, "info"},           {HETEE_MSG_SEAL, "seal"},
               {HETEE_MSG_UNSEAL, "unseal"},       {HETEE_MSG_SESSION_OPEN, "session_open"},
               {HETEE_MSG_SESSION_MSG, "session_msg"}, {HETEE_MSG_STATS, "stats"},
               {HETEE_MSG_MODEL_LOAD, "model_load"}, {HETEE_MSG_JOB_START, "job_start"},
               {HETEE_MSG_JOB_REFRESH, "job_refresh"}, {HETEE_MSG_JOB_RELEASE, "job_release"},
               {HETEE_MSG_JOB_AUTH, "job_auth"}};

static const char *msg_name(uint16_t type) {
  for (size_t k = 0; k < sizeof MSG_NAMES / sizeof MSG_NAMES[0]; k++)
    if (MSG_NAMES[k].type == type) return MSG_NAMES[k].name;
  return NULL;
}

char *metrics_render(server *S) {
  int64_t q = 0, r = 0;
  (void)store_job_counts(S->db, &q, &r);
  hetee_enclave_op_stats ops[64];
  size_t nops = 0;
  pthread_mutex_lock(&S->en.lock);
  unsigned restarts = hetee_host_restarts(S->en.e);
  if (S->en.e && hetee_host_stats(S->en.e, ops, sizeof ops / sizeof ops[0], &nops)) nops = 0;
  pthread_mutex_unlock(&S->en.lock);
  metrics *m = &S->m;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  pthread_mutex_lock(&m->lock);
  fprintf(f, "# HELP hetee_http_requests_total HTTP requests answered, by status class.\n");
  fprintf(f, "# TYPE hetee_http_requests_total counter\n");
  for (int c = 1; c <= 5; c++)
    fprintf(f, "hetee_http_requests_total{code=\"%dxx\"} %llu\n", c, (unsigned long long)m->req_by_class[c]);
  fprintf(f, "# HELP hetee_signed_requests_total Signed requests whose signature verified, by form.\n");
  fprintf(f, "# TYPE hetee_signed_requests_total counter\n");
  fprintf(f, "hetee_signed_requests_total{auth=\"v2\"} %llu\n", (unsigned long long)m->signed_ok[0]);
  fprintf(f, "hetee_signed_requests_total{auth=\"v3\"} %llu\n", (unsigned long long)m->signed_ok[1]);
  fprintf(f, "# HELP hetee_http_request_bytes_total Request body bytes received.\n# TYPE hetee_http_request_bytes_total counter\n");
  fprintf(f, "hetee_http_request_bytes_total %llu\n", (unsigned long long)m->bytes_in);
  fprintf(f, "# HELP hetee_queue_depth Jobs by state.\n# TYPE hetee_queue_depth gauge\n");
  fprintf(f, "hetee_queue_depth{state=\"queued\"} %lld\n", (long long)q);
  fprintf(f, "hetee_queue_depth{state=\"running\"} %lld\n", (long long)r);
  fprintf(f, "# HELP hetee_jobs_total Jobs finished since start, by outcome.\n# TYPE hetee_jobs_total counter\n");
  fprintf(f, "hetee_jobs_total{outcome=\"done\"} %llu\nhetee_jobs_total{outcome=\"failed\"} %llu\n",
          (unsigned long long)m->jobs_done, (unsigned long long)m->jobs_failed);
  fprintf(f, "# HELP hetee_images_total Images inferred since start.\n# TYPE hetee_images_total counter\n");
  fprintf(f, "hetee_images_total %llu\n", (unsigned long long)m->images);
  fprintf(f, "# HELP hetee_job_latency_seconds Job latency from acknowledgement to sealed results.\n");
  fprintf(f, "# TYPE hetee_job_latency_seconds histogram\n");
  for (int i = 0; i < 12; i++)
    fprintf(f, "hetee_job_latency_seconds_bucket{le=\"%g\"} %llu\n", BUCKETS[i], (unsigned long long)m->latency_buckets[i]);
  fprintf(f, "hetee_job_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->jobs_done);
  fprintf(f, "hetee_job_latency_seconds_sum %.6f\nhetee_job_latency_seconds_count %llu\n", m->job_latency_sum,
          (unsigned long long)m->jobs_done);
  fprintf(f, "# HELP hetee_job_run_seconds_total Host wall time of job runs.\n# TYPE hetee_job_run_seconds_total counter\n");
  fprintf(f, "hetee_job_run_seconds_total %.6f\n", m->job_wall_sum);
  fprintf(f, "# HELP hetee_enclave_cpu_seconds_total Enclave CPU time of job runs (refresh and release).\n");
  fprintf(f, "# TYPE hetee_enclave_cpu_seconds_total counter\nhetee_enclave_cpu_seconds_total %.6f\n", m->job_enclave_sum);
  fprintf(f, "# HELP hetee_enclave_time_share Enclave CPU seconds over job wall seconds.\n# TYPE hetee_enclave_time_share gauge\n");
  fprintf(f, "hetee_enclave_time_share %.4f\n", m->job_wall_sum > 0 ? m->job_enclave_sum / m->job_wall_sum : 0.0);
  fprintf(f, "# HELP hetee_job_batches_total Engine runs of several queued jobs of one model together.\n");
  fprintf(f, "# TYPE hetee_job_batches_total counter\nhetee_job_batches_total %llu\n", (unsigned long long)m->batches);
  fprintf(f, "# HELP hetee_batched_jobs_total Jobs done in such runs.\n# TYPE hetee_batched_jobs_total counter\n");
  fprintf(f, "hetee_batched_jobs_total %llu\n", (unsigned long long)m->batched_jobs);
  pthread_mutex_unlock(&m->lock);
  fprintf(f, "# HELP hetee_enclave_restarts_total Enclave restarts since start.\n# TYPE hetee_enclave_restarts_total counter\n");
  fprintf(f, "hetee_enclave_restarts_total %u\n", restarts);
  if (nops) {
    fprintf(f, "# HELP hetee_enclave_messages_total Messages the enclave answered since it started, by type (its STATS).\n"
               "# TYPE hetee_enclave_messages_total counter\n");
    for (size_t i = 0; i < nops; i++) {
      const char *nm = msg_name(ops[i].type);
      if (nm) fprintf(f, "hetee_enclave_messages_total{type=\"%s\"} %llu\n", nm, (unsigned long long)ops[i].count);
      else fprintf(f, "hetee_enclave_messages_total{type=\"%u\"} %llu\n", ops[i].type, (unsigned long long)ops[i].count);
    }
    fprintf(f, "# HELP hetee_enclave_message_cpu_seconds_total The enclave's CPU time answering them, by type.\n"
               "# TYPE hetee_enclave_message_cpu_seconds_total counter\n");
    for (size_t i = 0; i < nops; i++) {
      const char *nm = msg_name(ops[i].type);
      if (nm) fprintf(f, "hetee_enclave_message_cpu_seconds_total{type=\"%s\"} %.6f\n", nm, (double)ops[i].cpu_ns * 1e-9);
      else fprintf(f, "hetee_enclave_message_cpu_seconds_total{type=\"%u\"} %.6f\n", ops[i].type,
                   (double)ops[i].cpu_ns * 1e-9);
    }
  }
  fclose(f);
  return buf;
}
