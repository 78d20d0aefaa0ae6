/* Drawing on RGB images: rectangles, text in an own 5x8 bitmap font, labelled detection boxes
 * (draw.h). All painting goes through fill_ll, which works in 64-bit coordinates and clips, so no
 * caller-supplied coordinate can overflow or index outside the image. */
#include "data/draw.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* clang-format off */
const char *const ssd_coco_class_names[81] = {
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
};
/* clang-format on */

/* The font, one picture per glyph: 8 rows of 5 columns, '#' = set. Characters 32..126. */
static const char font[95][SSD_FONT_H][SSD_FONT_W + 1] = {
    {".....", ".....", ".....", ".....", ".....", ".....", ".....", "....."}, /* ' ' */
    {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#..", "....."}, /* '!' */
    {".#.#.", ".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."}, /* '"' */
    {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.", "....."}, /* '#' */
    {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#..", "....."}, /* '$' */
    {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", "....."}, /* '%' */
    {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#", "....."}, /* '&' */
    {"..#..", "..#..", ".#...", ".....", ".....", ".....", ".....", "....."}, /* ''' */
    {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....."}, /* '(' */
    {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....."}, /* ')' */
    {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", ".....", "....."}, /* '*' */
    {".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....."}, /* '+' */
    {".....", ".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}, /* ',' */
    {".....", ".....", ".....", "#####", ".....", ".....", ".....", "....."}, /* '-' */
    {".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "....."}, /* '.' */
    {".....", "....#", "...#.", "..#..", ".#...", "#....", ".....", "....."}, /* '/' */
    {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....."}, /* '0' */
    {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}, /* '1' */
    {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....."}, /* '2' */
    {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....."}, /* '3' */
    {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....."}, /* '4' */
    {"#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....."}, /* '5' */
    {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....."}, /* '6' */
    {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....."}, /* '7' */
    {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....."}, /* '8' */
    {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....."}, /* '9' */
    {".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", "....."}, /* ':' */
    {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#...", "....."}, /* ';' */
    {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", "....."}, /* '<' */
    {".....", ".....", "#####", ".....", "#####", ".....", ".....", "....."}, /* '=' */
    {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", "....."}, /* '>' */
    {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..", "....."}, /* '?' */
    {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###.", "....."}, /* '@' */
    {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."}, /* 'A' */
    {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", "....."}, /* 'B' */
    {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", "....."}, /* 'C' */
    {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", "....."}, /* 'D' */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#####", "....."}, /* 'E' */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#....", "....."}, /* 'F' */
    {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", "....."}, /* 'G' */
    {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."}, /* 'H' */
    {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}, /* 'I' */
    {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", "....."}, /* 'J' */
    {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", "....."}, /* 'K' */
    {"#....", "#....", "#....", "#....", "#....", "#....", "#####", "....."}, /* 'L' */
    {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", "....."}, /* 'M' */
    {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "....."}, /* 'N' */
    {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."}, /* 'O' */
    {"####.", "#...#", "#...#", "####.", "#....", "#....", "#....", "....."}, /* 'P' */
    {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", "....."}, /* 'Q' */
    {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", "....."}, /* 'R' */
    {".####", "#....", "#....", ".###.", "....#", "....#", "####.", "....."}, /* 'S' */
    {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."}, /* 'T' */
    {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."}, /* 'U' */
    {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."}, /* 'V' */
    {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", "....."}, /* 'W' */
    {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", "....."}, /* 'X' */
    {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", "....."}, /* 'Y' */
    {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", "....."}, /* 'Z' */
    {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.", "....."}, /* '[' */
    {".....", "#....", ".#...", "..#..", "...#.", "....#", ".....", "....."}, /* '\' */
    {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.", "....."}, /* ']' */
    {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", ".....", "....."}, /* '^' */
    {".....", ".....", ".....", ".....", ".....", ".....", ".....", "#####"}, /* '_' */
    {".#...", "..#..", "...#.", ".....", ".....", ".....", ".....", "....."}, /* '`' */
    {".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....."}, /* 'a' */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", "....."}, /* 'b' */
    {".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....."}, /* 'c' */
    {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", "....."}, /* 'd' */
    {".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....."}, /* 'e' */
    {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....."}, /* 'f' */
    {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}, /* 'g' */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."}, /* 'h' */
    {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....."}, /* 'i' */
    {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.."}, /* 'j' */
    {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....."}, /* 'k' */
    {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."}, /* 'l' */
    {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", "....."}, /* 'm' */
    {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."}, /* 'n' */
    {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....."}, /* 'o' */
    {".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...."}, /* 'p' */
    {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#"}, /* 'q' */
    {".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....."}, /* 'r' */
    {".....", ".....", ".####", "#....", ".###.", "....#", "####.", "....."}, /* 's' */
    {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....."}, /* 't' */
    {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....."}, /* 'u' */
    {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."}, /* 'v' */
    {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....."}, /* 'w' */
    {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."}, /* 'x' */
    {".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."}, /* 'y' */
    {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....."}, /* 'z' */
    {"...##", "..#..", "..#..", ".#...", "..#..", "..#..", "...##", "....."}, /* '{' */
    {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."}, /* '|' */
    {"##...", "..#..", "..#..", "...#.", "..#..", "..#..", "##...", "....."}, /* '}' */
    {".....", ".....", ".#...", "#.#.#", "...#.", ".....", ".....", "....."}, /* '~' */
};

int ssd_font_pixel(unsigned char c, int gx, int gy) {
    if (gx < 0 || gx >= SSD_FONT_W || gy < 0 || gy >= SSD_FONT_H) return 0;
    if (c < 32 || c > 126) c = '?';
    return font[c - 32][gy][gx] == '#';
}

/* Paints (l, t)..(r, b) (corners in any order) clipped to the image. */
static void fill_ll(ssd_image *im, long long l, long long t, long long r, long long b,
                    const uint8_t rgb[3]) {
    if (!im || !im->px || im->w <= 0 || im->h <= 0) return;
    if (l > r) {
        long long s = l;
        l = r, r = s;
    }
    if (t > b) {
        long long s = t;
        t = b, b = s;
    }
    if (l < 0) l = 0;
    if (t < 0) t = 0;
    if (r > im->w - 1) r = im->w - 1;
    if (b > im->h - 1) b = im->h - 1;
    for (long long y = t; y <= b; y++) {
        uint8_t *p = im->px + ((size_t)y * (size_t)im->w + (size_t)l) * 3;
        for (long long x = l; x <= r; x++, p += 3) p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
    }
}

void ssd_draw_fill(ssd_image *im, int l, int t, int r, int b, const uint8_t rgb[3]) {
    fill_ll(im, l, t, r, b, rgb);
}

static long long min_ll(long long a, long long b) { return a < b ? a : b; }
static long long max_ll(long long a, long long b) { return a > b ? a : b; }

void ssd_draw_rect(ssd_image *im, int l, int t, int r, int b, int thickness, const uint8_t rgb[3]) {
    if (thickness < 1) return;
    long long L = min_ll(l, r), R = max_ll(l, r), T = min_ll(t, b), B = max_ll(t, b);
    long long th = thickness;
    fill_ll(im, L, T, R, min_ll(T + th - 1, B), rgb); /* top */
    fill_ll(im, L, max_ll(B - th + 1, T), R, B, rgb); /* bottom */
    fill_ll(im, L, T, min_ll(L + th - 1, R), B, rgb); /* left */
    fill_ll(im, max_ll(R - th + 1, L), T, R, B, rgb); /* right */
}

int ssd_text_width(const char *text, int scale) {
    long long s = scale < 1 ? 1 : scale, per = SSD_FONT_ADVANCE_X * s;
    size_t n = text ? strlen(text) : 0;
    if (n > (size_t)(INT_MAX / per)) return INT_MAX;
    return (int)((long long)n * per);
}

int ssd_text_height(int scale) {
    long long s = scale < 1 ? 1 : scale;
    return s > INT_MAX / SSD_FONT_ADVANCE_Y ? INT_MAX : (int)(SSD_FONT_ADVANCE_Y * s);
}

int ssd_draw_text(ssd_image *im, int x, int y, const char *text, int scale, const uint8_t fg[3],
                  const uint8_t *bg) {
    int width = ssd_text_width(text, scale);
    if (!text || !im || im->w <= 0 || im->h <= 0) return width;
    long long s = scale < 1 ? 1 : scale, adv = SSD_FONT_ADVANCE_X * s;
    long long cell_h = SSD_FONT_ADVANCE_Y * s;
    if ((long long)y >= im->h || (long long)y + cell_h <= 0) return width;
    long long cx = x;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++, cx += adv) {
        if (cx >= im->w) break; /* this and every later cell lie right of the image */
        if (cx + adv <= 0) continue;
        if (bg) fill_ll(im, cx, y, cx + adv - 1, y + cell_h - 1, bg);
        for (int gy = 0; gy < SSD_FONT_H; gy++)
            for (int gx = 0; gx < SSD_FONT_W; gx++)
                if (ssd_font_pixel(*c, gx, gy)) {
                    long long px = cx + gx * s, py = (long long)y + gy * s;
                    fill_ll(im, px, py, px + s - 1, py + s - 1, fg);
                }
    }
    return width;
}

void ssd_class_color(int class_id, uint8_t rgb[3]) {
    int k = class_id % SSD_CLASS_PALETTE_SIZE;
    if (k < 0) k += SSD_CLASS_PALETTE_SIZE;
    /* hue steps by the golden ratio conjugate; value alternates so neighbours differ more */
    double h = fmod(k * 0.6180339887498949, 1.0) * 6.0, sat = 0.85, v = (k & 1) ? 0.78 : 1.0;
    /* HSV -> RGB: channel c = v - v * sat * clamp(min(m, 4 - m), 0, 1), m = (n_c + h) mod 6 */
    const double n[3] = {5.0, 3.0, 1.0};
    for (int i = 0; i < 3; i++) {
        double m = fmod(n[i] + h, 6.0);
        double w = fmin(fmin(m, 4.0 - m), 1.0);
        rgb[i] = (uint8_t)lround((v - v * sat * fmax(w, 0.0)) * 255.0);
    }
}

/* A float pixel coordinate rounded to the nearest integer, clamped to +-2^30. */
static int round_coord(float v) {
    const float lim = 1073741824.0f;
    if (v < -lim) v = -lim;
    if (v > lim) v = lim;
    return (int)lroundf(v);
}

int ssd_label_box_layout(int img_w, int img_h, float l, float t, float r, float b,
                         const char *label, int class_id, ssd_label_layout *out) {
    memset(out, 0, sizeof *out);
    if (!isfinite(l) || !isfinite(t) || !isfinite(r) || !isfinite(b) || img_w <= 0 || img_h <= 0)
        return -1;
    int L = round_coord(l), T = round_coord(t), R = round_coord(r), B = round_coord(b);
    out->l = L < R ? L : R, out->r = L < R ? R : L;
    out->t = T < B ? T : B, out->b = T < B ? B : T;
    int m = img_w < img_h ? img_w : img_h;
    out->thickness = m / 300 > 2 ? m / 300 : 2;
    out->scale = img_w < 600 ? 1 : 2;
    ssd_class_color(class_id, out->color);
    double lum = 0.299 * out->color[0] + 0.587 * out->color[1] + 0.114 * out->color[2];
    uint8_t tc = lum > 127.5 ? 0 : 255;
    out->text_color[0] = out->text_color[1] = out->text_color[2] = tc;
    out->ll = 0, out->lr = -1, out->lt = 0, out->lb = -1;
    if (!label || !*label) return 0;
    /* pad = one font pixel on the left and top; the cell's own blank column and row pad the
     * right and bottom */
    long long pad = out->scale;
    long long lw = min_ll((long long)ssd_text_width(label, out->scale) + pad, INT_MAX / 4);
    long long lh = (long long)ssd_text_height(out->scale) + pad;
    long long ll = out->l, lt = (long long)out->t - lh;
    if (lt < 0) lt = out->t >= 0 ? out->t : 0; /* no room above: inside the box's top */
    if (ll + lw > img_w) ll = img_w - lw;
    if (ll < 0) ll = 0;
    if (lt + lh > img_h) lt = img_h - lh;
    if (lt < 0) lt = 0;
    out->ll = (int)ll, out->lt = (int)lt;
    out->lr = (int)(ll + lw - 1), out->lb = (int)(lt + lh - 1);
    out->tx = (int)(ll + pad), out->ty = (int)(lt + pad);
    return 0;
}

void ssd_draw_label_box(ssd_image *im, float l, float t, float r, float b, const char *label,
                        int class_id) {
    ssd_label_layout lay;
    if (!im || ssd_label_box_layout(im->w, im->h, l, t, r, b, label, class_id, &lay) != 0) return;
    ssd_draw_rect(im, lay.l, lay.t, lay.r, lay.b, lay.thickness, lay.color);
    if (lay.lr < lay.ll) return;
    ssd_draw_fill(im, lay.ll, lay.lt, lay.lr, lay.lb, lay.color);
    ssd_draw_text(im, lay.tx, lay.ty, label, lay.scale, lay.text_color, NULL);
}
