/* Pooling over k×k windows with stride k, NCHW, floor: an edge row or column that does not fill
 * a window is dropped, as PyTorch's MaxPool2d(k) and AvgPool2d(k) do (docs/derivation.md §11).
 *   max:  y[c, oy, ox] = max over the window of x;  dL/dx = dL/dy at the window's arg-max
 *         (the first largest in row-major window order), 0 elsewhere
 *   mean: y = (1/k²) Σ_window x;                  dL/dx = dL/dy / k² on every pixel of it */
#include "internal.h"

#include <string.h>

void maxpool_forward(float *Y, int32_t *arg, const float *X, int B, int C, int H, int W, int k)
{
    int OH = H / k, OW = W / k;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *x = X + ((size_t)b * C + c) * H * W;
            float *y = Y + ((size_t)b * C + c) * OH * OW;
            int32_t *a = arg + ((size_t)b * C + c) * OH * OW;
            int32_t base = (int32_t)c * H * W;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int best = oy * k * W + ox * k;
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int at = (oy * k + i) * W + ox * k + j;
                            if (x[at] > x[best])
                                best = at;
                        }
                    y[oy * OW + ox] = x[best];
                    a[oy * OW + ox] = base + best;
                }
        }
}

void maxpool_backward(float *dX, const float *dY, const int32_t *arg, int B, int C, int H,
                      int W, int k)
{
    size_t in = (size_t)C * H * W, out = (size_t)C * (H / k) * (W / k);
    memset(dX, 0, (size_t)B * in * sizeof *dX);
    for (int b = 0; b < B; b++) {
        float *dx = dX + (size_t)b * in;
        const float *dy = dY + (size_t)b * out;
        const int32_t *a = arg + (size_t)b * out;
        for (size_t o = 0; o < out; o++)
            dx[a[o]] += dy[o]; /* windows do not overlap: += only for clarity */
    }
}

void avgpool_forward(float *Y, const float *X, int B, int C, int H, int W, int k)
{
    int OH = H / k, OW = W / k;
    float inv = 1.0f / (float)(k * k);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = X + bc * H * W;
        float *y = Y + bc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float s = 0.0f;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        s += x[(oy * k + i) * W + ox * k + j];
                y[oy * OW + ox] = s * inv;
            }
    }
}

void avgpool_backward(float *dX, const float *dY, int B, int C, int H, int W, int k)
{
    int OH = H / k, OW = W / k;
    float inv = 1.0f / (float)(k * k);
    memset(dX, 0, (size_t)B * C * H * W * sizeof *dX);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        float *dx = dX + bc * H * W;
        const float *dy = dY + bc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float g = dy[oy * OW + ox] * inv;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        dx[(oy * k + i) * W + ox * k + j] += g;
            }
    }
}
