/* Host stand-in (see README.md): esp_err.h of ESP-IDF 5.3, the part the shell uses. */
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
void te_host_check_failed(esp_err_t err, const char *expression);
#define ESP_ERROR_CHECK(x) do { esp_err_t err_ = (x); if (err_ != ESP_OK) te_host_check_failed(err_, #x); } while (0)
#ifdef __cplusplus
}
#endif
