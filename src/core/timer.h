/* Wall-clock timing (monotonic). */
#ifndef SSD_CORE_TIMER_H
#define SSD_CORE_TIMER_H

/* Seconds from an arbitrary fixed point, CLOCK_MONOTONIC. */
double ssd_now(void);

/* Accumulating stopwatch: start/stop pairs add to total and count. */
typedef struct ssd_timer {
    double started; /* < 0 when not running */
    double total;   /* seconds */
    long count;
} ssd_timer;

void ssd_timer_reset(ssd_timer *t);
void ssd_timer_start(ssd_timer *t);
/* Returns the seconds of this start/stop interval. */
double ssd_timer_stop(ssd_timer *t);
double ssd_timer_mean(const ssd_timer *t);

#endif
