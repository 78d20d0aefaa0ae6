/* libFuzzer target for the .pth reader (docs/pth.md): any bytes through ssd_pth_read_mem
 * must give SSD_OK or a named SSD_ERR_FORMAT, never a crash, a leak or undefined behaviour.
 * Built and run by `make fuzz` (clang -fsanitize=fuzzer,address,undefined), seeded with
 * tests/fuzz/corpus (small files in every container and pickle flavour). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ssd_pth_file *f = NULL;
    ssd_error err;
    ssd_status st = ssd_pth_read_mem(data, size, "fuzz.pth", &f, &err);
    if (st == SSD_OK) {
        /* touch every byte of every tensor so ASan checks the sizes we report */
        volatile uint8_t sink = 0;
        for (int i = 0; i < ssd_pth_count(f); i++) {
            const ssd_pth_tensor *t = ssd_pth_at(f, i);
            for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
        }
        (void)sink;
    } else if (st != SSD_ERR_FORMAT || !strstr(err.msg, "fuzz.pth")) {
        abort(); /* every input error must be a format error naming the file */
    }
    ssd_pth_free(f);
    return 0;
}
