/* Does Debian's libflite render correctly from several threads at once after initialisation?
 * (src/speech/flite.rs lets the render workers synthesize in parallel on that ground.)
 *
 *   gcc -O1 -g -pthread benches/flite_threads.c -o /tmp/flite_threads \
 *       -lflite_cmu_us_slt -lflite_cmu_us_kal16 -lflite_cmu_us_awb -lflite_cmu_us_rms \
 *       -lflite_usenglish -lflite_cmulex -lflite -lm          # Debian: flite1-dev
 *   /tmp/flite_threads 4 3                                   # 4 threads, 3 rounds each
 *   valgrind --tool=helgrind /tmp/flite_threads 2 1          # data races, if any
 *
 * Initialises flite and registers the four voices, renders eight texts once, one at a time (the
 * reference), then from T threads at once, every thread every text (each text with its own voice),
 * and compares each render with the reference sample for sample. The clustergen voices draw their
 * noise excitation from rand(): this program defines rand() itself (per thread, reset before each
 * render), so a render depends on its text and voice only and the comparison is exact.
 * Exit status 0 when every render matched. */
#include <flite/flite.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

cst_voice *register_cmu_us_slt(const char *);
cst_voice *register_cmu_us_kal16(const char *);
cst_voice *register_cmu_us_awb(const char *);
cst_voice *register_cmu_us_rms(const char *);

#define NTEXT 8
static cst_voice *voices[4];
static char texts[NTEXT][512];
static cst_wave *ref[NTEXT];
static int rounds = 1, nthreads = 4, failures = 0;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* Flite's CG vocoder draws noise from rand(): interpose a per-thread generator, reset before each
   render, so that a render's output is a function of its text and voice only. */
static __thread unsigned int seed_state = 1;
int rand(void) { seed_state = seed_state * 1103515245u + 12345u; return (int)((seed_state >> 1) & 0x7fffffff); }
static void reseed(void) { seed_state = 1; }

static int same(const cst_wave *a, const cst_wave *b) {
  return a->num_samples == b->num_samples && a->sample_rate == b->sample_rate &&
         memcmp(a->samples, b->samples, sizeof(short) * a->num_samples * a->num_channels) == 0;
}

static void *worker(void *arg) {
  long t = (long)arg;
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < NTEXT; k++) {
      int i = (k + t) % NTEXT;
      reseed();
      cst_wave *w = flite_text_to_wave(texts[i], voices[i % 4]);
      if (!w || !same(w, ref[i])) {
        pthread_mutex_lock(&fail_lock); failures++; pthread_mutex_unlock(&fail_lock);
      }
      if (w) delete_wave(w);
    }
  return NULL;
}

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec / 1e9; }

int main(int argc, char **argv) {
  if (argc > 1) nthreads = atoi(argv[1]);
  if (argc > 2) rounds = atoi(argv[2]);
  flite_init();
  voices[0] = register_cmu_us_slt(NULL);
  voices[1] = register_cmu_us_kal16(NULL);
  voices[2] = register_cmu_us_awb(NULL);
  voices[3] = register_cmu_us_rms(NULL);
  for (int i = 0; i < NTEXT; i++)
    snprintf(texts[i], sizeof texts[i],
             "Reference %d. At 3:45 pm on Dec. 7th, Dr. Smith paid $%d.%02d for %d items; "
             "please call 555-0%03d, the 2nd door on St. James Rd.", i, 100 + i * 7, i, i * 13, i);
  double t0 = now();
  for (int i = 0; i < NTEXT; i++) { reseed(); ref[i] = flite_text_to_wave(texts[i], voices[i % 4]); }
  double serial = now() - t0;
  pthread_t th[64];
  t0 = now();
  for (long t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, worker, (void *)t);
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  double par = now() - t0;
  printf("threads %d rounds %d: %d renders, %d differ from the reference; serial pass %.3f s, parallel %.3f s\n",
         nthreads, rounds, nthreads * rounds * NTEXT, failures, serial, par);
  return failures != 0;
}
