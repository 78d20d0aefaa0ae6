#include "box/anchors.h"

#include <math.h>

static const ssd_level_geom k_levels[SSD_NUM_LEVELS] = {
    {38, 8, 4, 0, 5776, 256},   {19, 16, 6, 5776, 2166, 512}, {10, 32, 6, 7942, 600, 512},
    {5, 64, 6, 8542, 150, 256}, {3, 100, 4, 8692, 36, 256},   {1, 300, 4, 8728, 4, 256},
};

/* scales[k] and scales[k+1] bound level k; aspect ratios beyond the two squares */
static const int k_scales[SSD_NUM_LEVELS + 1] = {21, 45, 99, 153, 207, 261, 315};
static const int k_n_aspect[SSD_NUM_LEVELS] = {1, 2, 2, 2, 1, 1}; /* [2] or [2,3] */

const ssd_level_geom *ssd_level(int level) { return &k_levels[level]; }

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

void ssd_anchors_build(ssd_anchors *a) {
    int idx = 0;
    for (int k = 0; k < SSD_NUM_LEVELS; k++) {
        const ssd_level_geom *g = &k_levels[k];
        double fk = (double)SSD_IMAGE_SIZE / g->step; /* not g->size: spec section 3 */
        double sk1 = k_scales[k] / (double)SSD_IMAGE_SIZE;
        double sk2 = k_scales[k + 1] / (double)SSD_IMAGE_SIZE;
        double sk3 = sqrt(sk1 * sk2);
        double wh[6][2] = {{sk1, sk1}, {sk3, sk3}};
        int nsizes = 2;
        for (int r = 0; r < k_n_aspect[k]; r++) {
            double ar = sqrt((double)(r + 2));
            wh[nsizes][0] = sk1 * ar, wh[nsizes][1] = sk1 / ar, nsizes++;
            wh[nsizes][0] = sk1 / ar, wh[nsizes][1] = sk1 * ar, nsizes++;
        }
        for (int d = 0; d < nsizes; d++)
            for (int i = 0; i < g->size; i++)
                for (int j = 0; j < g->size; j++, idx++) {
                    float *x = a->xywh[idx];
                    x[0] = clamp01((float)((j + 0.5) / fk));
                    x[1] = clamp01((float)((i + 0.5) / fk));
                    x[2] = clamp01((float)wh[d][0]);
                    x[3] = clamp01((float)wh[d][1]);
                    float *l = a->ltrb[idx];
                    l[0] = x[0] - 0.5f * x[2];
                    l[1] = x[1] - 0.5f * x[3];
                    l[2] = x[0] + 0.5f * x[2];
                    l[3] = x[1] + 0.5f * x[3];
                }
    }
}
